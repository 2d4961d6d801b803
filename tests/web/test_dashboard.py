"""The dashboard through a real web server: counts, the events timeline, jobs at work, the mode card."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import insert

from app.db import get_engine, session_scope
from app.models import Event, Observation, SecretFinding, SecretTriage, Target
from tests.support.processes import WebServer, wait_for

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def web_db(fallback_web, settings_env) -> WebServer:
    """A fallback-mode web server, and this process's settings on the same database (to seed it)."""
    return fallback_web


def count(html: str, name: str) -> int:
    found = re.search(rf'id="count-{name}">([\d,]+)<', html)
    assert found, f"no count {name} in the page"
    return int(found.group(1).replace(",", ""))


def seed() -> tuple[int, int]:
    with session_scope() as session:
        acme, hostile = Target(name="acme", domains=["acme.example"]), Target(name=HOSTILE, domains=["h.example"])
        session.add_all([acme, hostile])
        session.flush()
        ids = acme.id, hostile.id
    observations = [("subdomain", f"n{i}.acme.example", i != 0) for i in range(12)]
    observations += [("port", f"192.0.2.1:{p}", True) for p in (22, 80, 443)]
    observations += [("service", "https://n1.acme.example/", True), ("cert", "ab12", True)]
    with get_engine().begin() as connection:
        connection.execute(
            insert(Observation.__table__),
            [
                {"target_id": ids[0], "kind": k, "key": key, "value": {}, "present": present, "missing_runs": 0}
                for k, key, present in observations
            ],
        )
    with session_scope() as session:
        for fingerprint, severity in [
            ("f1", "critical"),
            ("f2", "high"),
            ("f3", "high"),
            ("f4", "low"),
            ("f5", "critical"),
        ]:
            session.add(
                SecretFinding(
                    asset="n1.acme.example",
                    fingerprint=fingerprint,
                    rule="test-rule",
                    description="a test secret",
                    severity=severity,
                    confidence="high",
                    redacted="abc…",
                    value=f"value-{fingerprint}",
                    url="https://n1.acme.example/app.js",
                )
            )
        session.add(SecretTriage(fingerprint="f5", status="resolved"))
        session.add(
            Event(target_id=ids[0], scan_id="b" * 32, type="new_port", severity="medium", summary="port 22 opened")
        )
        session.add(Event(target_id=ids[1], type="new_subdomain", severity="info", summary=f"new name {HOSTILE}"))
    return ids


def test_the_dashboard_counts_and_lists_what_is_there(web_db):
    acme, hostile = seed()
    page = web_db.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    html = page.text
    assert (count(html, "targets"), count(html, "subdomains"), count(html, "ports"), count(html, "services")) == (
        2,
        11,
        3,
        1,
    )
    assert count(html, "secrets") == 4 and "1 critical" in html and "2 high" in html  # f5 is resolved
    # The timeline: newest first, each event with its target, escaped.
    assert html.index("new name") < html.index("port 22 opened")
    assert f'href="/targets/{acme}">acme</a>' in html and f'href="/targets/{hostile}">' in html
    assert '<a class="small" href="/scans/' + "b" * 32 + '">' in html and 'href="/events"' in html
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    # The mode card says why jobs run in the web process.
    mode = re.search(r'<section id="dash-mode".*?</section>', html, re.S).group(0)
    assert "fallback" in mode and "is not reachable" in mode and 'hx-trigger="every 5s"' in mode

    # The fragments the page polls: the counts bring the events along, out of band.
    counts = web_db.get("/ui/dashboard/counts")
    assert counts.status_code == 200 and count(counts.text, "subdomains") == 11
    assert '<section id="dash-events" class="panel" hx-swap-oob="true">' in counts.text
    assert "fallback" in web_db.get("/ui/dashboard/mode").text


def test_jobs_at_work_show_their_progress_until_they_stop(web_db):
    fragment = web_db.get("/ui/dashboard/jobs")
    assert fragment.status_code == 200 and "Nothing running or queued" in fragment.text
    assert '<section id="dash-scans" class="panel" hx-swap-oob="true">' in fragment.text

    job = web_db.trigger("diag_sleep", seconds=60, steps=60)["job_id"]

    def progressing() -> str | None:
        text = web_db.get("/ui/dashboard/jobs").text
        row = re.search(rf'<tr id="dash-job-{job}".*?</tr>', text, re.S)
        value = row and re.search(r'<progress max="100" value="(\d+)"', row.group(0))
        return row.group(0) if value and int(value.group(1)) > 0 else None

    row = wait_for(progressing, 30, interval=0.3, what="the job's progress on the dashboard")
    assert 'data-status="running"' in row and f'href="/jobs/{job}">diag_sleep</a>' in row and "sleeping, step" in row
    assert web_db.get("/", headers={"Accept": "text/html"}).text.count(f'id="dash-job-{job}"') == 1

    assert web_db.post(f"/api/v1/jobs/{job}/cancel").status_code == 200
    wait_for(
        lambda: "Nothing running or queued" in web_db.get("/ui/dashboard/jobs").text, 30, what="the job to go away"
    )


def test_the_dashboard_needs_a_signed_in_user(shared_web):
    page = shared_web.get("/", auth=False, headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
    assert shared_web.get("/ui/dashboard/jobs", auth=False).status_code == 401
