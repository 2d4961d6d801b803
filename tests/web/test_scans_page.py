"""The Scans pages in a real headless Chromium: start a scan of the loopback lab, watch it run, read it."""

import pytest

from tests.support.processes import wait_for
from tests.web.conftest import login, shot

pytestmark = pytest.mark.browser


def test_start_a_scan_and_read_its_result(lab_web, page):
    lab, web = lab_web
    assert web.post("/api/v1/targets", json=lab.target()).status_code == 201
    login(page, web.url, then="/scans")
    assert "No scans yet" in page.locator("#scan-rows").inner_text()

    page.fill("input[name=target]", "10.0.0.0/8")
    page.click(".scan-form button")
    page.wait_for_selector("#scan-notice .error")
    assert "the limit is /16" in page.locator("#scan-notice").inner_text()

    page.fill("input[name=target]", "lab")
    page.click(".scan-form button")
    page.wait_for_selector("#scan-notice a")
    wait_for(lambda: "succeeded" in page.locator("#scan-rows").inner_text(), 90, what="scan to succeed")
    assert f"{len(lab.planted)} secrets" in page.locator("#scan-rows").inner_text()
    shot(page, "scans-list")

    page.click("#scan-rows a")
    page.wait_for_selector("h2")
    body = page.locator("main").inner_text()
    assert "Lab portal" in body and "portal-x9.lab.test" in body and "takeover candidate (Heroku)" in body
    for p in lab.planted:
        assert p.value not in page.content()
    shot(page, "scan-result")
