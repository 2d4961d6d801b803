"""Proofs of format: a token whose checksum holds is a finding of high confidence; one whose checksum
fails keeps its rule's confidence (the prefix and the shape still say what it is)."""

from __future__ import annotations

import base64
import json
import random

import pytest

from app.errors import RuleError
from app.secrets.engine import Matcher, scan_bytes
from app.secrets.proofs import complete_crc32_base62, crc32_base62, crc32_tail
from app.secrets.rules import fake_secret, generate, load_rules
from app.secrets.snippets import snippet
from tests.support.processes import RULE_CACHE

RULES = load_rules()
CHECKSUMMED = [rule for rule in RULES.rules if rule.validate == "crc32-base62"]


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


def test_the_crc32_tail_is_base62_of_the_random_part():
    rng = random.Random(7)
    for _ in range(200):
        random_part = generate("[0-9A-Za-z]{30}", rng)
        token = complete_crc32_base62(f"ghp_{random_part}XXXXXX")
        assert token.startswith("ghp_" + random_part) and len(token) == 40
        assert crc32_base62(token.encode())
        # One character changed anywhere breaks it.
        at = rng.randrange(4, 40)
        other = "a" if token[at] != "a" else "b"
        assert not crc32_base62((token[:at] + other + token[at + 1 :]).encode())
    assert crc32_tail(b"") == b"000000"
    assert not crc32_base62(b"npm_") and not crc32_base62(b"ghp_12345")


def test_tokens_with_a_checksum_rule_are_known():
    assert {rule.id for rule in CHECKSUMMED} >= {"github-pat", "github-oauth-token", "npm-access-token"}


@pytest.mark.parametrize("rule", CHECKSUMMED, ids=lambda r: r.id)
def test_a_valid_checksum_makes_a_finding_high_and_a_broken_one_medium(matcher, rule):
    rng = random.Random(rule.id)
    for template in rule.true_examples:
        valid = fake_secret(rule, rng)
        broken = valid[:-1] + ("0" if valid[-1] != "0" else "1")
        for value, confidence in ((valid, "high"), (broken, rule.confidence)):
            findings = scan_bytes(matcher, template.replace("{secret}", value).encode())
            assert [(f.rule, f.value, f.confidence) for f in findings] == [(rule.id, value.encode(), confidence)]


def test_an_unknown_proof_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        """
[[rules]]
id = "acme-token"
description = "ACME token"
pattern = '\\b(?P<secret>acme_[0-9a-f]{32})\\b'
keywords = ["acme_"]
validate = "luhn"
"""
    )
    with pytest.raises(RuleError, match="validate must be one of crc32-base62, jwt"):
        load_rules([path])


def token(header: dict, claims: dict, signature: str = "c2lnbmF0dXJlLW5vdC1zaG93bi1hbnl3aGVyZQ") -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def test_a_jwt_is_decoded_and_its_claims_are_shown_never_its_signature(matcher):
    service = token({"alg": "HS256", "typ": "JWT"}, {"iss": "supabase", "role": "service_role", "iat": 1700000000})
    (finding,) = scan_bytes(matcher, f'createClient(url, "{service}")'.encode())
    assert (finding.rule, finding.confidence) == ("jwt", "high")
    assert "role=service_role" in finding.description and "iss=supabase" in finding.description
    assert "HS256" in finding.description and "c2lnbmF0dXJl" not in finding.description + snippet(finding)


@pytest.mark.parametrize(
    ("header", "claims", "found"),
    [
        ({"alg": "HS256"}, {"role": "anon", "iss": "supabase", "iat": 1700000000, "exp": 2000000000}, False),
        ({"alg": "none"}, {"role": "admin"}, False),  # unsigned: proves nothing
        ({"alg": "RS256"}, {"sub": "u1", "iat": 1700000000, "exp": 1700003600}, False),  # an hour's life
        ({"alg": "RS256"}, {"sub": "u1", "iat": 1700000000, "exp": 1900000000}, True),  # six years
        ({"alg": "RS256"}, {"sub": "ci-bot"}, True),  # never expires
        ({"alg": "ES256"}, {"scope": "read write", "iat": 1700000000, "exp": 1700003600}, True),
        ({"alg": "HS256"}, {"roles": ["admin"], "iat": 1700000000, "exp": 1700003600}, True),
        ({"typ": "JWT"}, {"role": "admin"}, False),  # no alg: not a JWS header
    ],
)
def test_only_jwts_that_grant_something_are_findings(matcher, header, claims, found):
    value = token(header, claims)
    findings = scan_bytes(matcher, f'const t = "{value}";'.encode())
    assert [f.rule for f in findings] == (["jwt"] if found else [])


def test_hostile_claims_are_shown_on_one_line_and_short(matcher):
    value = token({"alg": "HS256"}, {"role": "admin\x1b[31m\u202e" + "x" * 500, "exp": 10**30})
    (finding,) = scan_bytes(matcher, f'"{value}"'.encode())
    assert "\x1b" not in finding.description and "\u202e" not in finding.description
    assert len(finding.description) < 200 and "exp=far future" in finding.description
