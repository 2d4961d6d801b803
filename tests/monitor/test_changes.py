"""Change detection: baselines, new / changed / gone with the missing-runs rule, partial scans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.db import session_scope
from app.models import Scan, Target
from app.monitor import changes, events

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALL = ["subdomains", "dns", "ports", "http", "js"]


def _doc(names: dict[str, list[str]], ports: dict[str, list[int]], services=(), secrets=(), js=(), warnings=()):
    return {
        "target": "acme",
        "subdomains": [{"name": n, "addresses": a, "sources": ["bruteforce"]} for n, a in names.items()],
        "wildcards": [],
        "hosts": [{"host": h, "names": [], "open_ports": p} for h, p in ports.items()],
        "services": list(services),
        "secrets": list(secrets),
        "js_files": list(js),
        "warnings": list(warnings),
    }


@pytest.fixture
def target(settings_env) -> int:
    with session_scope() as session:
        row = Target(name="acme", domains=["acme.test"])
        session.add(row)
        session.flush()
        return row.id


def _scan(target_id: int, doc: dict, modules=ALL, **options) -> list[dict]:
    scan_id = uuid.uuid4().hex
    with session_scope() as session:
        session.add(Scan(id=scan_id, target_id=target_id, target="acme", modules=modules, options=options, result=doc))
    ids = changes.detect(scan_id, now=NOW)
    return [e for e in events.list_events(target_id=target_id, limit=1000) if e["id"] in ids]


def _types(events: list[dict]) -> list[str]:
    return sorted(e["type"] for e in events)


def _service(url, status=200, title="Home", tls=None):
    return {"url": url, "host": "10.0.0.1", "port": 443, "hostname": "www.acme.test", "status": status,
            "title": title, "server": "nginx", "technologies": ["nginx"], "tls": tls}  # fmt: skip


def test_first_scan_is_a_baseline_then_changes_are_events(target):
    base = _doc({"acme.test": ["10.0.0.1"], "www.acme.test": ["10.0.0.1"], "old.acme.test": ["10.0.0.9"]},
                {"10.0.0.1": [80, 443], "10.0.0.9": [22]}, services=[_service("https://www.acme.test/")])  # fmt: skip
    first = _scan(target, base)
    assert _types(first) == ["scan.baseline"] and "First scan" in first[0]["summary"]

    assert _scan(target, base) == []  # nothing changed, nothing to say

    changed = _doc(
        {"acme.test": ["10.0.0.1"], "www.acme.test": ["10.0.0.2"], "new.acme.test": ["10.0.0.3"]},
        {"10.0.0.1": [80, 443, 8080]},
        services=[_service("https://www.acme.test/", status=403, title="Forbidden")],
        secrets=[{"rule": "github-pat", "url": "https://www.acme.test/app.js", "line": 1, "secret": "ghp_…", "fingerprint": "f1"}],
        js=["https://www.acme.test/app.js"],
    )  # fmt: skip
    events = _scan(target, changed)
    assert _types(events) == [
        "dns.changed", "js.new", "port.opened", "secret.new", "service.changed", "subdomain.new",
    ]  # fmt: skip
    by_type = {e["type"]: e for e in events}
    assert by_type["port.opened"]["summary"] == "Port 8080 opened on 10.0.0.1 on acme"
    assert by_type["port.opened"]["severity"] == "medium" and by_type["secret.new"]["severity"] == "high"
    assert by_type["dns.changed"]["data"]["before"] == {"addresses": ["10.0.0.1"]}
    assert by_type["service.changed"]["data"]["fields"] == ["status", "title"]
    assert "ghp_…" in str(by_type["secret.new"]["data"])  # events carry the redacted value only

    # old.acme.test and 10.0.0.9:22 are missing once: not gone yet (GONE_AFTER_MISSING_RUNS=2)...
    assert _types(_scan(target, changed)) == ["port.closed", "subdomain.gone"]  # ...second miss: gone, once
    assert _scan(target, changed) == []  # and not again


def test_flapping_is_not_gone_and_a_comeback_is_new(target):
    _scan(target, _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {}))
    assert _scan(target, _doc({"a.acme.test": ["10.0.0.1"]}, {})) == []  # b missed once
    assert _scan(target, _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {})) == []  # back: reset
    assert _scan(target, _doc({"a.acme.test": ["10.0.0.1"]}, {})) == []
    assert _types(_scan(target, _doc({"a.acme.test": ["10.0.0.1"]}, {}))) == ["subdomain.gone"]
    assert _types(_scan(target, _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {}))) == [
        "subdomain.new"
    ]


def test_partial_scans_never_produce_gone_events(target):
    _scan(target, _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {"10.0.0.1": [22]}))
    only_dns = _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {})
    for _ in range(3):  # the ports module did not run: port 22 is not "closed"
        assert _scan(target, only_dns, modules=["subdomains", "dns"]) == []
    failed_dns = _doc({}, {}, warnings=["resolution failed: 10.0.0.53:53 timed out"])
    for _ in range(3):
        assert _scan(target, failed_dns) == []
    for _ in range(3):
        assert _scan(target, _doc({}, {}), incremental=True) == []


def test_certificates_change_and_expire(target):
    soon = (NOW + timedelta(days=5)).isoformat()
    later = (NOW + timedelta(days=300)).isoformat()
    tls = {"fingerprint_sha256": "aa", "subject_cn": "www.acme.test", "issuer": "CN=CA", "not_after": later, "sans": []}
    _scan(target, _doc({}, {}, services=[_service("https://www.acme.test/", tls=tls)]))
    renewed = tls | {"fingerprint_sha256": "bb", "not_after": soon}
    events = _scan(target, _doc({}, {}, services=[_service("https://www.acme.test/", tls=renewed)]))
    assert _types(events) == ["cert.changed", "cert.expiring"]
    assert "expires in 5 days" in next(e for e in events if e["type"] == "cert.expiring")["summary"]
    assert _scan(target, _doc({}, {}, services=[_service("https://www.acme.test/", tls=renewed)])) == []


def test_takeover_candidates_are_events(target):
    _scan(target, _doc({"a.acme.test": ["10.0.0.1"]}, {}))
    doc = _doc({"a.acme.test": ["10.0.0.1"]}, {})
    doc["subdomains"].append({"name": "shop.acme.test", "addresses": [], "sources": ["ct"], "cname": "x.herokuapp.com",
                              "takeover": "Heroku"})  # fmt: skip
    assert _types(_scan(target, doc)) == ["subdomain.new", "takeover.candidate"]


def test_events_api_filters(target):
    _scan(target, _doc({"a.acme.test": ["10.0.0.1"]}, {}))
    _scan(target, _doc({"a.acme.test": ["10.0.0.1"], "b.acme.test": ["10.0.0.2"]}, {"10.0.0.1": [80]}))
    assert [e["type"] for e in events.list_events(target_id=target, types=["port.opened"])] == ["port.opened"]
    assert events.list_events(target_id=target + 1) == []
    assert events.list_events(target_id=target, since=NOW) == []
