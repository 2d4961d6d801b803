"""A target's tabs as pages: filter, sort and paging in SQL, exports, which secrets are the target's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from app.db import session_scope
from app.models import Event, Job, Observation, Scan, SecretFinding, SecretTriage, utcnow
from app.recon import assets, targets

XSS = "<script>alert('title')</script><img src=x onerror=alert(2)>"


def seed(target_id: int, subdomains: int = 30, ports: int = 120, gone: int = 5) -> None:
    """Observations of one target as its scans would leave them, plus a scan, events and secrets.

    Subdomains n0..n{N}.example.com (the first `gone` of them gone), ports spread over hosts
    10.0.0.x, two web services (one with a hostile title and a formula), a certificate, a script."""
    now = utcnow()
    rows = [
        {
            "target_id": target_id,
            "kind": "subdomain",
            "key": f"n{i:03d}.example.com",
            "value": {"addresses": [f"10.0.0.{i % 250}"]},
            "present": i >= gone,
            "missing_runs": 0 if i >= gone else 2,
            "first_scan_id": "a" * 32,
            "last_scan_id": "a" * 32,
            "updated_at": now - timedelta(minutes=i),
        }
        for i in range(subdomains)
    ]
    port_numbers = (22, 80, 443, 8080)
    for i in range(ports):
        host, port = f"10.0.0.{i // len(port_numbers)}", port_numbers[i % len(port_numbers)]
        rows.append(
            {
                "target_id": target_id,
                "kind": "port",
                "key": f"{host}:{port}",
                "value": {"host": host, "port": port},
                "present": True,
                "missing_runs": 0,
                "updated_at": now,
            }
        )
    services = [
        ("https://n010.example.com/", {"status": 200, "title": XSS, "technologies": ["nginx"], "favicon_hash": -123}),
        ("http://n011.example.com/", {"status": 302, "title": '=HYPERLINK("http://evil")', "technologies": []}),
    ]
    for url, value in services:
        host = {"https://n010.example.com/": "10.0.0.10", "http://n011.example.com/": "10.0.0.11"}[url]
        rows.append(
            {
                "target_id": target_id,
                "kind": "service",
                "key": url,
                "value": value | {"url": url, "host": host, "port": 443 if url.startswith("https") else 80},
                "present": True,
                "missing_runs": 0,
                "updated_at": now,
            }
        )
    rows.append(
        {
            "target_id": target_id,
            "kind": "cert",
            "key": "https://n010.example.com/",
            "value": {"fingerprint_sha256": "ab" * 32, "not_after": "2031-01-02T00:00:00+00:00", "issuer": "Lab CA"},
            "present": True,
            "missing_runs": 0,
            "updated_at": now,
        }
    )
    rows.append(
        {
            "target_id": target_id,
            "kind": "js",
            "key": "https://n010.example.com/static/app.js",
            "value": {"url": "https://n010.example.com/static/app.js"},
            "present": True,
            "missing_runs": 0,
            "updated_at": now,
        }
    )
    with session_scope() as session:
        session.execute(insert(Observation), rows)
        session.add(Job(id="j" * 32, name="recon_scan", status="succeeded"))
        session.add(
            Scan(
                id="a" * 32,
                target_id=target_id,
                target="t",
                job_id="j" * 32,
                stage="done",
                counts={"subdomains": subdomains, "open_ports": ports},
            )
        )
        for i, kind in enumerate(("scan.baseline", "port.opened", "subdomain.gone")):
            session.add(
                Event(
                    target_id=target_id,
                    scan_id="a" * 32,
                    type=kind,
                    severity="medium" if kind == "port.opened" else "info",
                    summary=f"{kind} number {i}",
                    created_at=now + timedelta(seconds=i),
                )
            )
        for asset, rule, severity in (
            ("n010.example.com", "aws-access-key", "high"),  # a subdomain of the target's domain
            ("10.0.0.11", "generic-api-key", "medium"),  # the address of one of its services
            ("elsewhere.test", "stripe-key", "critical"),  # another target's
        ):
            session.add(
                SecretFinding(
                    asset=asset,
                    fingerprint=f"fp-{asset}",
                    rule=rule,
                    description=f"{rule} found",
                    severity=severity,
                    confidence="high",
                    redacted="AKIA****",
                    value="AKIAREALVALUEDONOTSHOW",
                    url=f"https://{asset}/app.js",
                    sightings=1,
                )
            )
        session.add(SecretTriage(fingerprint="fp-10.0.0.11", status="false_positive"))


@pytest.fixture
def target_id(settings_env) -> int:
    target = targets.create({"name": "acme", "domains": ["example.com"], "cidrs": ["10.0.0.0/24"]})
    seed(target.id)
    return target.id


def test_pages_cover_every_row_once_in_order(target_id):
    first = assets.page(target_id, "ports", size=50)
    assert (first.total, first.pages, first.start, first.end, len(first.rows)) == (120, 3, 1, 50, 50)
    last = assets.page(target_id, "ports", page=3, size=50)
    assert (last.page, last.start, last.end, len(last.rows)) == (3, 101, 120, 20)
    beyond = assets.page(target_id, "ports", page=99, size=50)
    assert beyond.page == 3 and beyond.rows == last.rows  # a page past the end is the last page
    seen = [r["id"] for p in (1, 2, 3) for r in assets.page(target_id, "ports", page=p, size=50).rows]
    assert len(seen) == len(set(seen)) == 120
    assert [r["id"] for r in assets.export(target_id, "ports", batch=7)] == seen  # same order, every row


def test_sort_by_whitelisted_columns_and_numbers_as_numbers(target_id):
    by_port = assets.page(target_id, "ports", sort="port", direction="desc", size=200).rows
    assert [r["port"] for r in by_port[:30]] == [8080] * 30 and by_port[-1]["port"] == 22
    by_host = assets.page(target_id, "ports", size=4).rows  # the text order of "host:port"
    assert [r["port"] for r in by_host] == [22, 443, 80, 8080] and {r["host"] for r in by_host} == {"10.0.0.0"}
    # Anything not on the tab's list falls back to its default (never reaches SQL).
    bad = assets.page(target_id, "ports", sort="value; DROP TABLE observation", direction="sideways")
    assert (bad.query.sort, bad.query.direction) == ("host", "asc")
    newest = assets.page(target_id, "subdomains", sort="updated").rows
    assert newest[0]["name"] == "n005.example.com"  # updated_at descends with the number; 0-4 are gone
    assert assets.page(target_id, "services", sort="status", direction="desc").rows[0]["status"] == 302


def test_filter_state_and_like_wildcards(target_id):
    assert assets.page(target_id, "ports", q="10.0.0.1:").total == 4  # host 10.0.0.1 only
    assert assets.page(target_id, "ports", q=":8080").total == 30
    assert assets.page(target_id, "subdomains", q="10.0.0.7").total == 1  # addresses are searched too
    assert assets.page(target_id, "subdomains", q="%").total == 0  # a literal %, not "anything"
    assert assets.page(target_id, "subdomains", q="_").total == 0
    assert assets.page(target_id, "subdomains").total == 25
    gone = assets.page(target_id, "subdomains", state="gone")
    assert gone.total == 5 and {r["state"] for r in gone.rows} == {"gone"}
    assert assets.page(target_id, "subdomains", state="all").total == 30
    assert assets.page(target_id, "services", q="nginx").total == 1


def test_services_carry_tls_expiry_and_favicon(target_id):
    rows = {r["url"]: r for r in assets.page(target_id, "services").rows}
    https = rows["https://n010.example.com/"]
    assert (https["tls_not_after"], https["tls_issuer"], https["favicon_hash"]) == (
        "2031-01-02T00:00:00+00:00",
        "Lab CA",
        -123,
    )
    assert https["title"] == XSS  # stored and returned as is; escaping is the page's job
    assert rows["http://n011.example.com/"]["tls_not_after"] is None


def test_secrets_are_those_on_the_targets_hosts(target_id):
    page = assets.page(target_id, "secrets")
    assert [r["asset"] for r in page.rows] == ["n010.example.com", "10.0.0.11"]  # worst first
    assert page.rows[1]["triage"] == "false_positive"
    assert all(r["secret"] == "AKIA****" for r in page.rows)
    assert "AKIAREALVALUEDONOTSHOW" not in repr(list(assets.export(target_id, "secrets")))


def test_events_scans_counts_and_summaries(target_id):
    events = assets.page(target_id, "events").rows
    assert [e["type"] for e in events] == ["subdomain.gone", "port.opened", "scan.baseline"]  # newest first
    assert assets.page(target_id, "events", sort="severity").rows[0]["type"] == "port.opened"
    assert assets.page(target_id, "events", q="baseline").total == 1
    scan = assets.page(target_id, "scans").rows[0]
    assert (scan["status"], scan["subdomains"], scan["open_ports"]) == ("succeeded", 30, 120)
    counts = assets.counts(target_id)
    assert counts == {"subdomains": 25, "ports": 120, "services": 2, "js": 1, "secrets": 2, "events": 3, "scans": 1}
    summary = assets.summaries()[target_id]
    assert (summary["subdomains"], summary["ports"], summary["services"]) == (25, 120, 2)
    assert summary["last_scan_at"]


def test_unknown_tab_and_columns(target_id):
    with pytest.raises(assets.AssetQueryError, match="tabs are"):
        assets.page(target_id, "passwords")
    assert assets.columns("ports")[:2] == ("host", "port")
    assert "value" not in assets.columns("secrets")
