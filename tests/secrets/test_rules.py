"""Every shipped rule is checked against its own examples, with fake secrets made at test time."""

import random

import pytest

from app.secrets.engine import Matcher, scan_bytes
from app.secrets.rules import RuleError, fake_secret, generate, load_rules
from tests.support.processes import RULE_CACHE

RULES = load_rules()


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


def test_at_least_forty_rules_each_with_examples():
    assert len(RULES) >= 40
    for rule in RULES.rules:
        assert rule.true_examples and rule.false_examples and rule.generate, rule.id
        assert rule.keywords, rule.id


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.id)
def test_true_examples_are_found_exactly(matcher, rule):
    rng = random.Random(rule.id)
    for template in rule.true_examples:
        for _ in range(5):
            secret = fake_secret(rule, rng)
            text = template.replace("{secret}", secret)
            data = text.encode()
            findings = scan_bytes(matcher, data)
            assert [(f.rule, f.value) for f in findings] == [(rule.id, secret.encode())], text
            f = findings[0]
            assert data[f.start : f.end] == secret.encode()
            assert f.line == text[: text.index(secret)].count("\n") + 1


@pytest.mark.parametrize("rule", RULES.rules, ids=lambda r: r.id)
def test_false_examples_are_quiet(matcher, rule):
    for text in rule.false_examples:
        assert scan_bytes(matcher, text.encode()) == [], text


def test_generator_is_deterministic_per_seed():
    spec = "ghp_[0-9A-Za-z]{36}"
    assert generate(spec, random.Random(1)) == generate(spec, random.Random(1))
    assert len(generate(spec, random.Random(2))) == 40


def test_user_rules_extend_and_validate(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text(
        """
[[rules]]
id = "acme-internal-token"
description = "ACME internal token"
severity = "high"
pattern = '\\b(?P<secret>acme_[0-9a-f]{32})\\b'
keywords = ["acme_"]
generate = "acme_[0-9a-f]{32}"
examples.true = ['t="{secret}"']
examples.false = ['t="acme_00000000000000000000000000000000"']
"""
    )
    rules = load_rules([good])
    assert rules.by_id("acme-internal-token") and len(rules) == len(RULES) + 1
    secret = generate("acme_[0-9a-f]{32}", random.Random(3))
    found = scan_bytes(Matcher(rules), f'x="{secret}"'.encode())
    assert [f.rule for f in found] == ["acme-internal-token"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("not toml [[", "not valid TOML"),
        ("[[rules]]\nid='x y'\n", "needs an id"),
        ("[[rules]]\nid='a-b'\ndescription='d'\npattern='abc'\nkeywords=['a']\n", "named group"),
        ("[[rules]]\nid='a-b'\ndescription='d'\npattern='(?P<secret>a'\nkeywords=['a']\n", "invalid pattern"),
        (
            "[[rules]]\nid='a-b'\ndescription='d'\npattern='(?P<secret>a)'\nkeywords=['a']\nseverity='huge'\n",
            "severity",
        ),
    ],
)
def test_bad_rule_files_are_explained(tmp_path, body, needle):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(RuleError, match=needle):
        load_rules([path])


def test_rules_the_linear_engine_cannot_run_are_refused(tmp_path):
    path = tmp_path / "lookaround.toml"
    path.write_text("[[rules]]\nid='look'\ndescription='d'\npattern='(?P<secret>foo(?=bar))'\nkeywords=['foo']\n")
    with pytest.raises(RuleError, match="linear-time engine"):
        Matcher(load_rules([path], builtin=False))


ACME_RULE = """
[[rules]]
id = "acme-internal-token"
description = "ACME internal token"
pattern = '\\b(?P<secret>acme_[0-9a-f]{32})\\b'
keywords = ["acme_"]
"""


def test_parsed_rules_are_cached_by_their_texts(tmp_path):
    mine, cache = tmp_path / "mine.toml", tmp_path / "cache"
    mine.write_text(ACME_RULE)
    first = load_rules([mine], cache_dir=cache)
    (entry,) = cache.glob("secrets-*.json")
    again = load_rules([mine], cache_dir=cache)
    assert again.digest == first.digest and [r.id for r in again.rules] == [r.id for r in first.rules]
    # A hit compiles patterns only when a scan needs them, and they work the same.
    secret = "acme_" + "3f" * 16
    assert [f.rule for f in scan_bytes(Matcher(again), f'x="{secret}"'.encode())] == ["acme-internal-token"]
    # A changed rule file is another entry; a broken one is explained, cache or not.
    mine.write_text(ACME_RULE.replace("{32}", "{40}"))
    assert load_rules([mine], cache_dir=cache).by_id("acme-internal-token").pattern.endswith("{40})\\b")
    assert len(list(cache.glob("secrets-*.json"))) == 2
    mine.write_text(ACME_RULE.replace("(?P<secret>", "("))
    with pytest.raises(RuleError, match="named group"):
        load_rules([mine], cache_dir=cache)


def test_a_damaged_rules_cache_is_read_again_from_the_files(tmp_path):
    cache = tmp_path / "cache"
    load_rules(cache_dir=cache)
    (entry,) = cache.glob("secrets-*.json")
    for damage in (b"", b"{not json", b'{"digest": "other", "files": []}', b"[1, 2]"):
        entry.write_bytes(damage)
        assert len(load_rules(cache_dir=cache)) == len(RULES)
    # A cache that cannot be written (here: a file where the folder should be) only costs the parse.
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    assert len(load_rules(cache_dir=blocked / "cache")) == len(RULES)
