"""Browser fixtures: a real headless Chromium (Debian's), driven by Playwright."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import ADMIN_PASSWORD, ADMIN_USER, ROOT, WebServer, app_env
from tests.support.reconlab import ReconLab

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def lab_web(tmp_path):
    """The recon lab (loopback DNS, CT and web servers) and a fallback-mode web server that uses it."""
    lab = ReconLab(tmp_path / "words.txt")
    web = WebServer(app_env(tmp_path / "data", UNREACHABLE_REDIS, **lab.env())).start()
    yield lab, web
    web.stop()
    lab.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; ./setup_tools.sh --with-test-tools installs it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _on_dialog(dialog, errors: list[str]) -> None:
    if dialog.type == "confirm" and dialog.message.startswith(("Delete ", "Revoke ", "Cancel ")):
        dialog.accept()
        return
    errors.append(f"dialog opened: {dialog.message}")
    dialog.dismiss()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy violation (an inline script or style slipped in) fails the test too.
    page.on("console", lambda msg: "Content Security Policy" in msg.text and errors.append(msg.text))
    # Scanned content is hostile: any dialog means markup from a target ran in our page.
    # (Our own "Delete ...?" / "Revoke ...?" confirmations are accepted.)
    page.on("dialog", lambda dialog: _on_dialog(dialog, errors))
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page, base_url: str, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD, then: str = "/") -> None:
    """Sign in through the real form, as a person would."""
    page.goto(f"{base_url}/login?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{then}*")
