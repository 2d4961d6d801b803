"""Live verification against loopback stand-ins of every provider it knows (tests/support/providers.py):
each request must be exactly what the provider documents; valid, revoked, rate-limited and hanging
credentials give verified, invalid, unknown, unknown; nothing follows a redirect to another host."""

from __future__ import annotations

import json
import secrets as random_secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.accounts import audit
from app.errors import VerificationOff
from app.secrets import verified, verify
from app.settings import get_settings
from tests.support.processes import RULE_CACHE, free_port
from tests.support.providers import SPEC, Providers

KINDS = {v.kind: v for v in verify.verifiers().values()}


@pytest.fixture(scope="module")
def providers():
    server = Providers().start()
    yield server
    server.stop()


@pytest.fixture
def pointed(settings_env, monkeypatch, providers):
    monkeypatch.setenv("SECRETS_VERIFY_URLS", json.dumps(providers.urls()))
    monkeypatch.setenv("SECRETS_VERIFY_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("SECRETS_VERIFY_PER_MINUTE", "6000")
    get_settings.cache_clear()
    return providers


def test_every_verifier_has_a_stand_in_and_twenty_kinds_are_known():
    assert len(KINDS) >= 20 and set(KINDS) == set(SPEC)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_valid_revoked_limited_and_hanging(pointed, kind):
    verifier = KINDS[kind]
    rule = verifier.rules[0]
    partner = None
    expected = {"valid": "verified", "revoked": "invalid", "limited": "unknown", "hang": "unknown"}
    for answer, status in expected.items():
        secret = f"fake-{answer}-{random_secrets.token_hex(12)}"  # made at test time
        if verifier.partner:
            partner = (
                "AKIA" + random_secrets.token_hex(8).upper() if kind == "aws" else "SK" + random_secrets.token_hex(16)
            )
            pointed.partners[partner] = secret
        pointed.answers[secret] = answer
        result = verify.verify(rule, secret, partner)
        assert result.status == status, (answer, result)
        assert pointed.requests[-1] == (kind, "ok")  # the request was exactly the provider's
    if kind == "aws":  # a wrong secret signs wrongly: AWS refuses it
        pointed.partners["AKIAWRONGSIGNATURE00"] = "the-real-secret"
        assert verify.verify(rule, "not-the-real-secret", "AKIAWRONGSIGNATURE00").status == "invalid"


def test_a_pair_without_its_partner_is_unknown(pointed):
    result = verify.verify("aws-secret-access-key", "x" * 40, None)
    assert result.status == "unknown" and "aws-access-key-id" in result.detail
    assert verify.verify("no-such-rule", "x").status == "unknown"


def test_a_redirect_is_never_followed(settings_env, monkeypatch):
    hits = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{other.server_address[1]}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.2", free_port()), Elsewhere)
    first = ThreadingHTTPServer(("127.0.0.1", free_port()), Redirect)
    for server in (other, first):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SECRETS_VERIFY_URLS", json.dumps({"github": f"http://127.0.0.1:{first.server_address[1]}"}))
        get_settings.cache_clear()
        result = verify.verify("github-pat", "ghp_" + "a" * 36)
        assert result.status == "unknown" and "302" in result.detail and hits == []
    finally:
        for server in (other, first):
            server.shutdown()
            server.server_close()


def test_bad_verify_urls_are_refused(settings_env, monkeypatch):
    monkeypatch.setenv("SECRETS_VERIFY_URLS", json.dumps({"github": "ftp://x"}))
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="not an http"):
        get_settings()


def test_a_stored_finding_is_verified_audited_and_raised(pointed, monkeypatch):
    import random

    from app.secrets import store
    from app.secrets.engine import Matcher, scan_bytes
    from app.secrets.rules import fake_secret, load_rules

    rules = load_rules()
    value = fake_secret(rules.by_id("stripe-secret-key"), random.Random("verify"))
    findings = scan_bytes(Matcher(rules, RULE_CACHE), f'const stripe = require("stripe")("{value}");'.encode())
    store.record(findings, "https://shop.lab.test/app.js", None)
    (row,) = store.list_findings()
    with pytest.raises(VerificationOff, match="SECRETS_VERIFY=true"):
        verified.verify_finding(row["id"], "alice")
    monkeypatch.setenv("SECRETS_VERIFY", "true")
    get_settings.cache_clear()
    pointed.answers[value] = "valid"
    after = verified.verify_finding(row["id"], "alice", "127.0.0.1")
    assert after["verification"]["status"] == "verified" and after["severity"] == "critical"  # was critical
    assert audit.recent(action="secret.verify")[0]["detail"]["result"] == "verified"
