"""Recall and precision on real bundles (npm packages fetched at test time) with planted fake secrets."""

import json
import random

import pytest

from app.secrets.engine import Matcher
from app.secrets.inputs import Limits
from app.secrets.rules import load_rules
from app.secrets.scan import scan_paths
from app.secrets.snippets import snippet
from tests.support.bundles import main_bundles, package_dirs
from tests.support.planting import plant
from tests.support.processes import RULE_CACHE

RULES = load_rules()


@pytest.fixture(scope="module")
def matcher():
    return Matcher(RULES, RULE_CACHE)


def test_clean_bundles_have_no_findings(matcher):
    dirs = list(package_dirs().values())
    report = scan_paths(dirs, matcher=matcher, limits=Limits())
    assert report.files_scanned > 1000 and report.bytes_scanned > 100 << 20
    assert [(f.rule, f.file, f.redacted()) for f in report.findings] == []


def test_planted_secrets_recall_precision_and_exact_offsets(matcher, tmp_path):
    rng = random.Random(20261124)
    planted_total = found_total = false_total = 0
    for bundle in main_bundles():
        data, plants = plant(bundle.read_bytes(), RULES, matcher, rng)
        target = tmp_path / bundle.name
        target.write_bytes(data)
        report = scan_paths([target], matcher=matcher, limits=Limits(chunk_size=256 << 10))
        expected = {(p.rule, p.start): p for p in plants}
        got = {(f.rule, f.start): f for f in report.findings}
        for key, finding in got.items():
            if key in expected:
                p = expected[key]
                assert finding.value == p.value and data[finding.start : finding.end] == p.value
                assert finding.line == data.count(b"\n", 0, finding.start) + 1
                assert finding.column == finding.start - data.rfind(b"\n", 0, finding.start)
        planted_total += len(expected)
        found_total += len(expected.keys() & got.keys())
        false = [(f.rule, f.redacted(), snippet(f, radius=40)) for k, f in got.items() if k not in expected]
        false_total += len(false)
        missed = [(k[0], expected[k].value[:12]) for k in expected.keys() - got.keys()]
        assert not false, false
        assert not missed, missed
    recall = found_total / planted_total
    precision = found_total / (found_total + false_total)
    assert planted_total > 300
    assert recall >= 0.97 and precision >= 0.97


def test_planted_secrets_in_a_real_source_map_name_the_original_file_and_line(matcher, tmp_path):
    """Secrets planted into the original sources of pdf.js's own source map, then JSON-encoded into
    sourcesContent as a bundler would: found in the .map, and traced back to the source file and line."""
    bundle = package_dirs()["pdfjs-dist"] / "build" / "pdf.mjs.map"
    sourcemap = json.loads(bundle.read_bytes())
    rng = random.Random(7)
    index = max(range(len(sourcemap["sourcesContent"])), key=lambda i: len(sourcemap["sourcesContent"][i] or ""))
    original, plants = plant(sourcemap["sourcesContent"][index].encode(), RULES, matcher, rng)
    sourcemap["sourcesContent"][index] = original.decode()
    target = tmp_path / "pdf.mjs.map"
    target.write_text(json.dumps(sourcemap))
    report = scan_paths([target], matcher=matcher, limits=Limits())

    # A value JSON would escape (a PEM key's newlines) is found in its escaped form.
    expected = {json.dumps(p.value.decode())[1:-1]: p for p in plants}
    got = {f.secret: f for f in report.findings}
    found = expected.keys() & got.keys()
    false = [(f.rule, f.redacted()) for value, f in got.items() if value not in expected]
    assert not false, false
    assert len(found) / len(expected) >= 0.97, sorted(expected[v].rule for v in expected.keys() - got.keys())
    for value in found:
        finding, p = got[value], expected[value]
        assert finding.source == sourcemap["sources"][index]
        assert finding.source_line == original.count(b"\n", 0, p.start) + 1
