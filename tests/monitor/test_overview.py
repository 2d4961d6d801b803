"""The dashboard's numbers and lists, from a real database: counts, events, jobs at work, latest scans."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, text

from app.db import get_engine, session_scope
from app.models import Event, Job, Observation, Scan, SecretFinding, SecretTriage, Target, utcnow
from app.monitor import overview


def add_target(name: str) -> int:
    target = Target(name=name, domains=[f"{name}.example"])
    with session_scope() as session:
        session.add(target)
        session.flush()
        return target.id


def add_finding(fingerprint: str, severity: str, asset: str = "www.acme.example") -> None:
    with session_scope() as session:
        session.add(
            SecretFinding(
                asset=asset,
                fingerprint=fingerprint,
                rule="test-rule",
                description="a test secret",
                severity=severity,
                confidence="high",
                redacted="abc…",
                value="abcdef",
                url=f"https://{asset}/app.js",
            )
        )


def add_job(status: str, minutes_ago: float = 0, **values) -> str:
    job_id = uuid.uuid4().hex
    with session_scope() as session:
        session.add(
            Job(
                id=job_id,
                name="diag_sleep",
                status=status,
                created_at=utcnow() - timedelta(minutes=minutes_ago),
                **values,
            )
        )
    return job_id


def test_an_empty_database_counts_zero(settings_env):
    assert overview.counts() == {
        "targets": 0,
        "subdomains": 0,
        "services": 0,
        "ports": 0,
        "secrets": 0,
        "secrets_critical": 0,
        "secrets_high": 0,
    }
    assert overview.summary() == {"counts": overview.counts(), "events": [], "jobs": [], "scans": []}


def test_counts_are_what_is_present_now_and_not_triaged(settings_env):
    acme, other = add_target("acme"), add_target("other")
    rows = [
        {"target_id": acme, "kind": "subdomain", "key": "www.acme.example", "value": {}, "present": True},
        {"target_id": acme, "kind": "subdomain", "key": "gone.acme.example", "value": {}, "present": False},
        {"target_id": other, "kind": "subdomain", "key": "www.other.example", "value": {}, "present": True},
        {"target_id": acme, "kind": "service", "key": "https://www.acme.example/", "value": {}, "present": True},
        {"target_id": acme, "kind": "port", "key": "192.0.2.1:443", "value": {}, "present": True},
        {"target_id": acme, "kind": "port", "key": "192.0.2.1:22", "value": {}, "present": False},
        {"target_id": acme, "kind": "cert", "key": "ab12", "value": {}, "present": True},  # not counted
    ]
    with get_engine().begin() as connection:
        connection.execute(insert(Observation.__table__), [row | {"missing_runs": 0} for row in rows])
    add_finding("f1", "critical")
    add_finding("f1", "critical", asset="api.acme.example")  # the same secret on another host: a finding too
    add_finding("f2", "high")
    add_finding("f3", "medium")
    add_finding("f4", "critical")
    with session_scope() as session:  # triaged: not open any more, on every asset
        session.add(SecretTriage(fingerprint="f4", status="false_positive"))
    assert overview.counts() == {
        "targets": 2,
        "subdomains": 2,
        "services": 1,
        "ports": 1,
        "secrets": 4,
        "secrets_critical": 2,
        "secrets_high": 1,
    }


def test_counts_at_scale_come_from_an_index_not_from_rows(settings_env):
    """10,000 names and 50,000 ports counted in the database, through a covering index."""
    targets = [add_target(f"t{n}") for n in range(5)]
    names = [
        {"target_id": targets[i % 5], "kind": "subdomain", "key": f"h{i}.example", "present": i % 10 != 0}
        for i in range(10_000)
    ]
    ports = [
        {"target_id": targets[i % 5], "kind": "port", "key": f"192.0.2.{i % 250}:{i}", "present": True}
        for i in range(50_000)
    ]
    with get_engine().begin() as connection:
        rows = [row | {"value": {"note": "x" * 300}, "missing_runs": 0} for row in names + ports]
        connection.execute(insert(Observation.__table__), rows)
    counts = overview.counts()
    assert (counts["subdomains"], counts["ports"], counts["services"]) == (9_000, 50_000, 0)
    if get_engine().dialect.name != "sqlite":
        return  # the query plan below is SQLite's; PostgreSQL picks its plan from its own statistics
    with get_engine().connect() as connection:
        plan = connection.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT kind, count(*) FROM observation WHERE target_id IN (SELECT id FROM target)"
                " AND kind IN ('subdomain', 'service', 'port') AND present IS 1 GROUP BY kind"
            )
        ).all()
    assert any("COVERING INDEX" in str(step) for step in plan), plan


def test_recent_events_are_newest_first_with_their_target(settings_env):
    acme = add_target("acme <b>")
    now = utcnow()
    with session_scope() as session:
        for n in range(20):
            session.add(
                Event(
                    target_id=acme,
                    scan_id="a" * 32,
                    type="new_subdomain",
                    severity="info",
                    summary=f"event {n}",
                    created_at=now - timedelta(minutes=20 - n),
                )
            )
    events = overview.recent_events()
    assert len(events) == 15
    assert [e["summary"] for e in events[:2]] == ["event 19", "event 18"]
    assert events[0]["target"] == "acme <b>" and events[0]["target_id"] == acme
    assert events[0]["created_at"].endswith("+00:00") and events[0]["scan_id"] == "a" * 32
    assert len(overview.recent_events(limit=3)) == 3


def test_active_jobs_are_running_then_queued_and_name_their_scan(settings_env):
    queued_old = add_job("queued", minutes_ago=10)
    running = add_job("running", minutes_ago=5, progress=40, message="Scanning ports")
    queued_new = add_job("queued", minutes_ago=1)
    add_job("succeeded", minutes_ago=2)
    add_job("failed", minutes_ago=3)
    scan_id = uuid.uuid4().hex
    with session_scope() as session:
        session.add(Scan(id=scan_id, target="acme", job_id=running, stage="ports"))
    jobs = overview.active_jobs()
    assert [j["job_id"] for j in jobs] == [running, queued_old, queued_new]
    assert jobs[0] | {"scan_id": scan_id, "target": "acme", "progress": 40, "message": "Scanning ports"} == jobs[0]
    assert jobs[1]["scan_id"] is None and jobs[1]["status"] == "queued"


def test_recent_scans_carry_their_job_state_but_not_their_results(settings_env):
    done_job = add_job("succeeded", progress=100, message="Done: 3 subdomains")
    scans = []
    with session_scope() as session:
        for n, job_id in enumerate([done_job, None]):
            scan = Scan(
                id=uuid.uuid4().hex,
                target=f"scan {n}",
                job_id=job_id,
                stage="done",
                counts={"subdomains": 3},
                result={"subdomains": [{"name": "x" * 1000}]},
                created_at=utcnow() - timedelta(minutes=10 - n),
            )
            session.add(scan)
            scans.append(scan.id)
    latest = overview.recent_scans()
    assert [s["scan_id"] for s in latest] == [scans[1], scans[0]]
    assert latest[1] | {"status": "succeeded", "progress": 100, "message": "Done: 3 subdomains"} == latest[1]
    assert latest[1]["counts"] == {"subdomains": 3} and "result" not in latest[1]
    assert latest[0]["status"] == "failed" and latest[0]["message"] == "its job is gone"
