"""No context shown anywhere carries a full secret: for every pair of rules next to each other in the
rule files, two fake secrets are planted side by side, and no snippet, readable window, JSON, SARIF
or text report of either finding shows either value, nor a value that no rule knows."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console

from app.secrets.engine import Matcher, scan_bytes
from app.secrets.inputs import Limits
from app.secrets.report import as_json, as_sarif, print_text
from app.secrets.rules import fake_secret, load_rules
from app.secrets.scan import scan_paths
from app.secrets.snippets import readable, snippet
from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import RULE_CACHE, app_env, run_cli

RULES = load_rules()
PAIRS = list(zip(RULES.rules, RULES.rules[1:], strict=False))


def planted(pair, rng: random.Random) -> tuple[str, list[str]]:
    """The two rules' first true examples on neighbouring lines, and an unknown random credential."""
    values, lines = [], []
    for rule in pair:
        value = fake_secret(rule, rng)
        values.append(value)
        lines.append(rule.true_examples[0].replace("{secret}", value))
    unknown = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(32))
    values.append(unknown)
    lines.insert(1, f'var acmeInternalCredential = "{unknown}";')
    return "\n".join(lines) + "\n", values


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0].id}+{p[1].id}")
def test_neighbouring_secrets_never_show_in_context(matcher, pair):
    text, values = planted(pair, random.Random("|".join(r.id for r in pair)))
    findings = scan_bytes(matcher, text.encode())
    shown = []
    for f in findings:
        shown += [snippet(f), readable(f)[0], f.redacted()]
    for value in values:
        assert not any(value in s for s in shown), (value, shown)


def test_no_report_format_shows_a_full_secret(matcher, tmp_path):
    rng = random.Random(2026)
    values = []
    for index, pair in enumerate(PAIRS):
        text, planted_values = planted(pair, rng)
        (tmp_path / f"pair{index:03}.js").write_text(text)
        values += planted_values
    report = scan_paths([tmp_path], matcher=matcher, limits=Limits())
    assert len(report.findings) >= len(RULES)  # most rules found twice (each rule is in two pairs)
    console = Console(file=io.StringIO(), width=160, color_system=None)
    print_text(report, console)
    outputs = [as_json(report), as_sarif(report, RULES), console.file.getvalue()]
    leaked = [value for value in values if any(value in out for out in outputs)]
    assert leaked == []


def test_the_cli_default_output_shows_no_full_secret(tmp_path):
    rng = random.Random(11)
    (tmp_path / "in").mkdir()
    values = []
    for index, pair in enumerate(PAIRS[::7]):
        text, planted_values = planted(pair, rng)
        (tmp_path / "in" / f"pair{index:03}.js").write_text(text)
        values += planted_values
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    for args in ((), ("--format", "json"), ("--format", "sarif")):
        done = run_cli(env, "secrets", "scan", str(tmp_path / "in"), *args)
        assert done.returncode == 1, done.stderr  # findings
        leaked = [value for value in values if value in done.stdout or value in done.stderr]
        assert leaked == [], args
