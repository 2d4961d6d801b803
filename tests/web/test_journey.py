"""The whole journey in a real headless Chromium, once with Redis and a Celery worker and once in
fallback mode: sign in, add a target pointing at the loopback lab (plus a hostile web service), scan
it and watch the progress reach 100%, open a secret finding and reveal it, cancel a job, see the
events; every page is saved under tests/artifacts/ and nothing a target sent runs in the page."""

from __future__ import annotations

import re

import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.hostile import PAYLOADS, hostile_site
from tests.support.processes import WebServer, Worker, app_env
from tests.support.reconlab import ReconLab
from tests.web.conftest import login, shot

pytestmark = pytest.mark.browser


@pytest.fixture(params=["celery", "fallback"])
def stack(request, tmp_path, redis_server):
    mode = request.param
    lab = ReconLab(tmp_path / "words.txt")
    evil = hostile_site().start()
    redis_url = redis_server.url if mode == "celery" else UNREACHABLE_REDIS
    if mode == "celery":
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    # Resolvers and the CT source are settings: the whole deployment looks at the lab.
    env = app_env(
        tmp_path / "data",
        redis_url,
        **lab.env(),
        resolvers=lab.dns.address,
        ct_url=f"{lab.ct.url}/ct?q=%25.{{domain}}",
        http_verify_tls="false",
        gone_after_missing_runs="1",
    )
    worker = Worker(env).start() if mode == "celery" else None
    web = WebServer(env).start()
    yield mode, lab, evil, web
    web.stop()
    if worker:
        worker.stop()
    evil.stop()
    lab.stop()


def test_sign_in_scan_reveal_cancel_and_see_events(stack, page):
    mode, lab, evil, web = stack
    base = web.url
    evil_port = int(evil.url.rsplit(":", 1)[1].strip("/"))

    # Sign in; the dashboard says how jobs run.
    login(page, base)
    page.wait_for_selector(f"#mode-badge.mode-{mode}" if mode == "celery" else "#mode-badge.mode-fallback")
    shot(page, f"{mode}-dashboard")

    # Add the target with the form: a wrong network first (inline error, nothing stored), then right.
    page.goto(base + "/targets")
    page.fill("#new-name", "lab")
    page.fill("#new-domains", "lab.test")
    page.fill("#new-cidrs", "10.0.0.0/8")
    page.click("#target-form button[type=submit]")
    page.wait_for_selector("#target-form .field-error")
    assert "/16" in page.locator("#target-form").inner_text()
    assert web.get("/api/v1/targets").json()["count"] == 0
    page.fill("#new-cidrs", "")
    page.fill("#new-urls", evil.url + "/")
    page.fill("#new-exclude", "excluded.lab.test, 127.0.0.13")
    page.fill("input[name=ports]", f"{lab.ports_spec},{evil_port}")
    page.fill("input[name=http_ports]", ",".join(str(p) for p in [*lab.web_ports, evil_port]))
    shot(page, f"{mode}-targets-add")
    page.click("#target-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/targets/\d+$"))

    # Scan it from its page and follow the live scan page to 100%.
    page.click("text=Scan now")
    page.click("#target-notice a")
    page.wait_for_selector(".scan-status[data-status=succeeded]", timeout=120_000)
    assert page.locator("#scan-progress").get_attribute("value") == "100"
    log_text = page.locator("#scan-log").inner_text()
    assert "Ports:" in log_text and "Succeeded" in log_text
    page.wait_for_selector("text=Lab portal")  # the results, filled in by the last live answer
    shot(page, f"{mode}-scan-detail")

    # The target's tabs: hostile markup from the target shows as text.
    target_url = page.locator("a[href^='/targets/']").first.get_attribute("href")
    page.goto(base + target_url + "?tab=services")
    page.wait_for_selector(f"text={PAYLOADS['title']}")
    html = page.content()
    for payload in PAYLOADS.values():
        assert payload not in html  # never raw markup in the page
    assert "&lt;script&gt;alert('title')&lt;/script&gt;" in html
    shot(page, f"{mode}-target-services")
    page.goto(base + target_url + "?tab=subdomains")
    page.wait_for_selector("text=portal-x9.lab.test")
    assert "127.0.0.16" not in page.locator("main table").inner_text()  # an IP SAN is not a subdomain
    shot(page, f"{mode}-target-subdomains")

    # A secret finding: open it, reveal it (an admin), the value is one the lab planted.
    page.goto(base + "/secrets")
    page.locator("#finding-rows a[href^='/secrets/']").first.click()
    page.wait_for_selector("button.reveal")
    page.click("button.reveal")
    page.wait_for_selector(".revealed")
    revealed = page.locator(".revealed").inner_text().strip()
    planted = {p.value for p in lab.planted}
    assert revealed in planted
    shot(page, f"{mode}-secret-finding")
    reveals = web.get("/api/v1/audit?action=secret.reveal").json()["entries"]
    assert reveals and reveals[0]["actor"] == "admin"

    # Cancel a job from the Jobs page.
    page.goto(base + "/jobs")
    page.select_option(".trigger select[name=task]", "diag_sleep")
    page.fill(".trigger input[name=kwargs]", '{"seconds": 60}')
    page.click(".trigger button")
    page.wait_for_selector("tr.job[data-status=running] button.cancel", timeout=30_000)
    page.click("tr.job[data-status=running] button.cancel")
    page.wait_for_selector("tr.job[data-status=cancelled]", timeout=30_000)
    shot(page, f"{mode}-jobs")

    # Something changes: the hostile service goes away. The next scan says so on the Timeline.
    evil.stop()
    page.goto(base + target_url)
    page.click("text=Scan now")
    page.click("#target-notice a")
    page.wait_for_selector(".scan-status[data-status=succeeded]", timeout=120_000)
    page.goto(base + "/events")
    page.wait_for_selector("main table :text('scan.baseline')")
    page.wait_for_selector("main table :text('port.closed')")
    assert f"Port {evil_port} closed on 127.0.0.16" in page.locator("main table.events").inner_text()
    shot(page, f"{mode}-timeline")

    # Settings (its forms are driven in test_settings_page.py).
    page.goto(base + "/settings")
    shot(page, f"{mode}-settings")
