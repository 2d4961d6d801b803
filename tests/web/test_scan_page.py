"""The live scan page through a real web server in fallback mode: a real scan of the loopback lab logs its
stages, the live fragment follows it and stops (HTTP 286) with the results; a running scan can be cancelled."""

from __future__ import annotations

import html
import re

import pytest

from tests.support.processes import WebServer, wait_for
from tests.web.conftest import login, shot

HX = {"HX-Request": "true"}


def log_lines(fragment: str) -> list[tuple[str, str]]:
    """(level, message) of each log line in a page or fragment."""
    found = re.findall(r'<li class="log-(\w+)"><time[^>]*>[^<]*</time> (.*?)</li>', fragment, re.S)
    return [(level, html.unescape(message)) for level, message in found]


def wait_until_over(web: WebServer, scan_id: str) -> tuple:
    """Poll the live fragment as the page does, until it answers 286. Returns (last answer, statuses seen)."""
    seen: list[int] = []

    def over():
        answer = web.get(f"/ui/scans/{scan_id}/live", headers=HX)
        seen.append(answer.status_code)
        return answer if answer.status_code == 286 else None

    return wait_for(over, 120, interval=0.5, what=f"scan {scan_id} to finish"), seen


def test_a_scan_logs_its_stages_and_its_live_fragment_stops_with_the_results(lab_web):
    lab, web = lab_web
    assert web.post("/api/v1/targets", json=lab.target()).status_code == 201
    scan_id = web.post("/api/v1/scans", json={"target": "lab"}).json()["scan_id"]

    final, seen = wait_until_over(web, scan_id)
    assert set(seen) <= {200, 286}
    assert (
        'data-status="succeeded"' in final.text and '<progress id="scan-progress" max="100" value="100">' in final.text
    )
    # The last answer brings the results, swapped into the page out of band.
    assert '<section id="scan-results" class="scan-results" hx-swap-oob="true">' in final.text
    assert "Lab portal" in final.text and "takeover candidate (Heroku)" in final.text

    lines = log_lines(final.text)
    messages = [message for _, message in lines]
    assert messages[0].startswith("Started in fallback mode (Redis at ")
    assert messages[-1].startswith("Succeeded: Done: 9 subdomains")
    in_order = [
        "Discovering subdomains of lab.test: certificate transparency and a brute force of ",
        "Subdomains: ",
        "Resolving ",
        "DNS: ",
        "Scanning ",
        "Ports: 4 open on 3 hosts",
        "Probing ",
        "HTTP: 5 web services (2 with TLS); 1 new name(s) from certificates",
        "Scanning the JavaScript of ",
        "JavaScript: ",
    ]
    at = 0
    for prefix in in_order:
        at = next(i for i in range(at, len(messages)) if messages[i].startswith(prefix)) + 1
    assert any(m.startswith("JavaScript: ") and m.endswith(f", {len(lab.planted)} secrets") for m in messages)
    warnings = [message for level, message in lines if level == "warning"]
    assert any(m.startswith("Warning: dangling.lab.test points at") for m in warnings), warnings
    assert len(messages) < 60  # stage by stage, not name by name
    for planted in lab.planted:
        assert planted.value not in final.text

    # The page of a finished scan: the same log and results, no polling, nothing to cancel.
    page = web.get(f"/scans/{scan_id}").text
    assert 'hx-trigger="every 1s"' not in page and "/cancel" not in page
    assert log_lines(page) == lines and "Lab portal" in page


def test_a_running_scan_can_be_cancelled_from_its_page(fallback_web, settings_env):
    from app.accounts import tokens

    started = fallback_web.post(
        "/api/v1/scans", json={"target": "127.0.0.64/29", "modules": ["ports"], "options": {"ports": "1-65535"}}
    )
    scan_id = started.json()["scan_id"]
    wait_for(lambda: fallback_web.get(f"/api/v1/scans/{scan_id}").json()["stage"] == "ports", 30, what="port scan")

    page = fallback_web.get(f"/scans/{scan_id}").text
    assert f'hx-get="/ui/scans/{scan_id}/live" hx-trigger="every 1s"' in page
    assert f'hx-post="/ui/scans/{scan_id}/cancel"' in page
    live = fallback_web.get(f"/ui/scans/{scan_id}/live", headers=HX)
    assert live.status_code == 200 and 'data-status="running"' in live.text
    assert "Scanning 65,535 ports on 6 hosts" in [m for _, m in log_lines(live.text)]

    # A viewer sees the scan but no Cancel button, and may not cancel.
    _, viewer = tokens.create("viewer", role="viewer")
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    viewer_page = fallback_web.get(f"/scans/{scan_id}", auth=False, headers=as_viewer).text
    assert "Scanning 65,535 ports" in viewer_page and "/cancel" not in viewer_page
    assert fallback_web.post(f"/ui/scans/{scan_id}/cancel", auth=False, headers=HX | as_viewer).status_code == 403
    assert fallback_web.post(f"/ui/scans/{scan_id}/cancel", auth=False, headers=HX).status_code == 401
    assert fallback_web.post(f"/ui/scans/{scan_id}/cancel").status_code == 403  # not from the page (no htmx)

    cancelled = fallback_web.post(f"/ui/scans/{scan_id}/cancel", headers=HX)
    assert cancelled.status_code == 200 and "Cancel requested" in cancelled.text
    final, _ = wait_until_over(fallback_web, scan_id)
    assert 'data-status="cancelled"' in final.text
    assert log_lines(final.text)[-1] == ("warning", "Cancelled: cancelled on request")


def test_unknown_scans(fallback_web):
    assert fallback_web.get("/scans/not-a-scan").status_code == 404
    assert fallback_web.get("/scans/" + "0" * 32).status_code == 404
    gone = fallback_web.get("/ui/scans/" + "0" * 32 + "/live", headers=HX)
    assert gone.status_code == 286 and "no longer exists" in gone.text


@pytest.mark.browser
def test_watch_a_scan_run_in_the_browser(lab_web, page):
    lab, web = lab_web
    assert web.post("/api/v1/targets", json=lab.target()).status_code == 201
    scan_id = web.post("/api/v1/scans", json={"target": "lab"}).json()["scan_id"]
    login(page, web.url, then=f"/scans/{scan_id}")

    page.wait_for_selector('#scan-progress[value="100"]', timeout=120_000)
    page.wait_for_selector("#scan-results >> text=Lab portal", timeout=10_000)
    assert page.locator(".scan-status").get_attribute("data-status") == "succeeded"
    log = page.locator("#scan-log").inner_text()
    assert "Started in fallback mode" in log and "Ports: 4 open on 3 hosts" in log and "Succeeded: Done:" in log
    assert page.locator("#scan-log li.log-warning").count() >= 1
    for planted in lab.planted:
        assert planted.value not in page.content()
    shot(page, "scan-detail")

    page.click("nav >> text=Dashboard")
    page.wait_for_selector(f"#dash-scans a[href='/scans/{scan_id}']")
    assert int(page.locator("#count-subdomains").inner_text().replace(",", "")) > 0
    assert page.locator("#count-secrets").inner_text() == str(len(lab.planted))
    assert "fallback" in page.locator("#dash-mode").inner_text()
    shot(page, "dashboard")
    page.go_back()
    page.wait_for_selector("#scan-log")
    assert page.url.endswith(f"/scans/{scan_id}")
