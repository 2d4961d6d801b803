"""Values public by design stay quiet everywhere, whichever rule (the generic ones too) matches them;
the same shapes where they are secrets are not excused."""

from __future__ import annotations

import random

import pytest

from app.secrets import public
from app.secrets.engine import Matcher, scan_bytes
from app.secrets.rules import generate, load_rules
from tests.support.processes import RULE_CACHE

RULES = load_rules()


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


def test_the_documented_public_keys_are_listed():
    assert {entry.id for entry in RULES.public} >= {
        "mapbox-public-token",
        "stripe-publishable-key",
        "recaptcha-site-key",
        "firebase-web-api-key",
        "algolia-search-only-key",
        "sentry-dsn-public-key",
    }


@pytest.mark.parametrize("entry", RULES.public, ids=lambda e: e.id)
def test_public_values_are_quiet_or_low(matcher, entry):
    assert len(entry.true_examples) >= 2 and entry.generate, entry.id
    rng = random.Random(entry.id)
    for template in entry.true_examples:
        value = generate(entry.generate, rng)
        assert entry.value.fullmatch(value.encode()), value
        text = template.replace("{value}", value).encode()
        at = text.index(value.encode())
        assert public.verdict(RULES.public, value.encode(), text, at, at + len(value)) == entry.action
        findings = [f for f in scan_bytes(matcher, text) if value.encode() in f.value]
        assert all(f.confidence == "low" for f in findings) if entry.action == "low" else findings == [], text


@pytest.mark.parametrize("entry", [e for e in RULES.public if e.false_examples], ids=lambda e: e.id)
def test_the_same_shape_elsewhere_is_not_excused(entry):
    rng = random.Random(entry.id + "/false")
    for template in entry.false_examples:
        value = generate(entry.generate, rng)
        text = template.replace("{value}", value).encode()
        at = text.index(value.encode())
        assert public.verdict(RULES.public, value.encode(), text, at, at + len(value)) is None, text


def test_the_generic_rules_leave_a_mapbox_public_token_alone(matcher):
    token = generate("pk.eyJ1IjoiYXNzZXRtb24iLCJhIjoi[A-Za-z0-9]{24}In0.[A-Za-z0-9_]{22}", random.Random(1))
    for text in (f'mapboxgl.accessToken="{token}";', f'access_token = "{token}"', f'"Bearer {token}"'):
        assert scan_bytes(matcher, text.encode()) == [], text
