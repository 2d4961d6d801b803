"""Triage of stored secret findings: a verdict by fingerprint that holds across scans and assets,
is undone only by reopening, filters the lists, and leaves an audit trail. Fake secrets are
generated here, scanned by the real engine and stored by the real store."""

from __future__ import annotations

import random

import pytest

from app.accounts import audit
from app.secrets import store, triage
from app.secrets.engine import Finding, scan_bytes
from app.secrets.scan import make_matcher
from tests.support.weblab import fake


@pytest.fixture
def scanned(settings_env) -> list[Finding]:
    """Two fresh fake secrets, found by the engine in a small bundle."""
    rng = random.Random()
    github, stripe = fake("github-pat", rng), fake("stripe-secret-key", rng)
    bundle = f'const a={{token:"{github}"}};\nconst b={{key:"{stripe}"}};\n'.encode()
    findings = scan_bytes(make_matcher(), bundle, "main.js")
    assert sorted(f.rule for f in findings) == ["github-pat", "stripe-secret-key"]
    return findings


def _ids(**filters) -> dict[str, int]:
    return {f"{f['asset']}/{f['rule']}": f["id"] for f in store.list_findings(**filters)}


def test_mark_then_reopen(scanned):
    store.record(scanned, "https://app.example.com/main.js", "job1")
    ids = _ids()
    github = ids["app.example.com/github-pat"]
    fingerprint = store.get_finding(github)["fingerprint"]
    assert triage.status_of(fingerprint) == "open" and store.get_finding(github)["triage"] is None

    verdict = triage.mark(github, "false_positive", "  test fixture in docs  ", actor="alice", ip="10.0.0.7")
    assert verdict["status"] == "false_positive" and verdict["note"] == "test fixture in docs"
    assert verdict["actor"] == "alice" and verdict["seen_again"] is False
    assert triage.status_of(fingerprint) == "false_positive"
    assert store.get_finding(github)["triage"] == verdict

    triage.mark(github, "resolved", actor="bob")  # a new verdict replaces the old one
    assert store.get_finding(github)["triage"]["status"] == "resolved"
    assert store.get_finding(github)["triage"]["note"] == ""

    assert triage.reopen(github, actor="alice", ip="10.0.0.7") is True
    assert triage.status_of(fingerprint) == "open" and store.get_finding(github)["triage"] is None
    assert triage.reopen(github, actor="alice") is False  # nothing to reopen: nothing logged

    trail = audit.recent()
    assert [(a["action"], a["actor"]) for a in trail] == [
        ("secret.reopen", "alice"),
        ("secret.triage", "bob"),
        ("secret.triage", "alice"),
    ]
    first = trail[-1]
    assert first["subject"] == f"secret finding {github}" and first["ip"] == "10.0.0.7"
    assert first["detail"]["fingerprint"] == fingerprint and first["detail"]["status"] == "false_positive"
    assert first["detail"]["previous"] == "open" and trail[0]["detail"]["previous"] == "resolved"
    assert not [s for s in (f.secret for f in scanned) if s in str(trail)]  # no secret in the audit log


def test_bad_verdicts_are_refused(scanned):
    store.record(scanned, "https://app.example.com/main.js", "job1")
    github = _ids()["app.example.com/github-pat"]
    with pytest.raises(triage.TriageError, match="status must be one of false_positive, resolved"):
        triage.mark(github, "wontfix")
    with pytest.raises(triage.TriageError, match="at most 500"):
        triage.mark(github, "resolved", "x" * 501)
    with pytest.raises(store.FindingNotFound):
        triage.mark(999_999, "resolved")
    with pytest.raises(store.FindingNotFound):
        triage.reopen(999_999)
    assert store.get_finding(github)["triage"] is None and audit.recent() == []


def test_a_verdict_survives_a_rescan_that_sees_the_secret_again(scanned):
    store.record(scanned, "https://app.example.com/main.js", "job1")
    github = _ids()["app.example.com/github-pat"]
    triage.mark(github, "resolved", "rotated", actor="alice")
    assert store.get_finding(github)["triage"]["seen_again"] is False

    assert store.record(scanned, "https://app.example.com/main.js", "job2") == 0  # the next scan finds it again
    again = store.get_finding(github)
    assert again["last_job_id"] == "job2" and again["sightings"] == 2
    assert again["triage"]["status"] == "resolved" and again["triage"]["note"] == "rotated"
    assert again["triage"]["seen_again"] is True  # still there: the rotation did not reach this bundle
    listed = store.list_findings(status="resolved")
    assert [f["id"] for f in listed] == [github] and listed[0]["triage"]["seen_again"] is True
    assert github not in _ids(status="open").values()


def test_a_verdict_applies_to_the_same_secret_on_every_asset(scanned):
    store.record(scanned, "https://app.example.com/main.js", "job1")
    store.record(scanned, "https://cdn.example.net/static/bundle.js", "job1")
    ids = _ids()
    assert len(ids) == 4
    triage.mark(ids["app.example.com/github-pat"], "false_positive", actor="alice")

    on_cdn = store.get_finding(ids["cdn.example.net/github-pat"])
    assert on_cdn["triage"]["status"] == "false_positive"
    assert store.get_finding(ids["cdn.example.net/stripe-secret-key"])["triage"] is None

    # A third asset that shows the same secret later inherits the verdict, flagged as seen since.
    store.record(scanned, "https://admin.example.org/app.js", "job2")
    later = _ids(asset="admin.example.org")
    assert store.get_finding(later["admin.example.org/github-pat"])["triage"]["seen_again"] is True

    triage.reopen(ids["cdn.example.net/github-pat"], actor="bob")  # reopened anywhere: open everywhere
    assert all(f["triage"] is None for f in store.list_findings())


def test_lists_filter_and_count_by_status(scanned):
    store.record(scanned, "https://app.example.com/main.js", "job1")
    store.record(scanned, "https://cdn.example.net/bundle.js", "job1")
    ids = _ids()
    assert store.counts() == {"open": 4, "false_positive": 0, "resolved": 0, "all": 4}
    triage.mark(ids["app.example.com/github-pat"], "false_positive")
    triage.mark(ids["app.example.com/stripe-secret-key"], "resolved")

    assert _ids(status="open") == {}
    assert sorted(_ids(status="false_positive")) == ["app.example.com/github-pat", "cdn.example.net/github-pat"]
    assert sorted(_ids(status="resolved")) == ["app.example.com/stripe-secret-key", "cdn.example.net/stripe-secret-key"]
    assert len(_ids(status="all")) == 4 and len(_ids()) == 4  # 'all' is the store's default
    assert store.counts() == {"open": 0, "false_positive": 2, "resolved": 2, "all": 4}

    triage.reopen(ids["cdn.example.net/stripe-secret-key"])  # the same secret on both assets
    assert sorted(_ids(status="open")) == ["app.example.com/stripe-secret-key", "cdn.example.net/stripe-secret-key"]
    assert sorted(_ids(status="open", asset="CDN.example.net.")) == ["cdn.example.net/stripe-secret-key"]
    assert store.counts(asset="cdn.example.net") == {"open": 1, "false_positive": 1, "resolved": 0, "all": 2}
    with pytest.raises(store.BadStatusFilter, match="status must be one of open, false_positive, resolved, all"):
        store.list_findings(status="closed")


def test_contexts_stored_as_one_raw_line_are_beautified_for_reading():
    # Rows stored before the beautified window was kept hold one line with ⏎ for newlines.
    old = 'var a=1;const cfg={token:"ghp_…",api:"/v1"};⏎function f(){return "<b>x</b>"};'
    shown = store.display_context(old)
    assert "⏎" not in shown and 'token: "ghp_…"' in shown and 'return "<b>x</b>"' in shown
    assert len(shown.splitlines()) > 3
    already = 'const cfg = {\n  token: "ghp_…"\n};'
    assert store.display_context(already) == already  # what is stored now is shown as is
