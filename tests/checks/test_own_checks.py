"""AssetMon's own checks, each against the loopback lab its file describes: the flawed site is reported,
the clean one (often a "soft 404" that answers 200 to everything) is not, and a plain site trips none
of them except the header checks, which are about exactly such a site."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from app.checks.loader import BUILTIN_TEMPLATES, load_templates, template_files
from app.checks.runner import RunOptions, run_templates
from tests.support.checklab import Lab, pin_loopback, serve

FILES = template_files(BUILTIN_TEMPLATES)
LOADED = load_templates()
BY_ID = {t.id: t for t in LOADED.templates}
PLAIN_SITE = [
    {
        "path": "*",
        "status": 200,
        "headers": {"Content-Type": "text/html; charset=utf-8"},
        "body": "<!doctype html><html><head><title>Acme</title></head><body><h1>Welcome to Acme</h1>"
        "<p>We make things. Read about our .git workflow, our config and backups on the blog.</p></body></html>",
    }
]


def _examples(path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["x-assetmon-lab"]


def test_at_least_80_own_checks_all_load_with_their_lab_examples():
    assert LOADED.skipped == [], LOADED.skipped[:5]
    assert len(FILES) >= 80 and len(LOADED.templates) == len(FILES)
    for template in LOADED.templates:
        assert template.path is not None and template.path.stem == template.id
        assert template.info.authors == ("assetmon",), template.id
        assert template.info.references, f"{template.id}: cite the vendor's documentation"
        assert not template.sends_bodies, f"{template.id}: own checks are read-only"
        examples = _examples(template.path)
        assert examples.get("flawed") and examples.get("clean"), template.id


@pytest.fixture(scope="module")
def lab_runs():
    lab = Lab()
    sites = {}
    for index, template in enumerate(LOADED.templates):
        examples = _examples(template.path)
        sites[template.id] = (
            lab.add(f"c{index}-flawed", examples["flawed"]),
            lab.add(f"c{index}-clean", examples["clean"]),
        )
    lab.add("plain", PLAIN_SITE)
    options = RunOptions(pin=pin_loopback, concurrency=16, timeout=10, host_rate=10_000, global_rate=100_000)
    with serve(lab) as port:

        async def run_all():
            each = await asyncio.gather(
                *(
                    run_templates([f"http://{flawed}.lab:{port}", f"http://{clean}.lab:{port}"], [t], options)
                    for t, (flawed, clean) in ((BY_ID[i], s) for i, s in sites.items())
                )
            )
            plain = await run_templates([f"http://plain.lab:{port}"], LOADED.templates, options)
            return dict(zip(sites, each, strict=True)), plain

        runs, plain = asyncio.run(run_all())
    return sites, runs, plain


@pytest.mark.parametrize("check_id", sorted(path.stem for path in FILES))
def test_check_reports_the_flawed_site_and_not_the_clean_one(lab_runs, check_id):
    sites, runs, _ = lab_runs
    flawed, clean = sites[check_id]
    report = runs[check_id]
    hit_sites = {r.target.split("//")[1].split(".lab")[0] for r in report.results}
    assert report.errors == 0 and report.out_of_scope == 0
    assert flawed in hit_sites, f"{check_id} missed its flawed lab"
    assert clean not in hit_sites, f"{check_id} fired on its clean lab: {[r.url for r in report.results]}"
    for result in report.results:
        assert result.severity == BY_ID[check_id].info.severity and result.response.startswith("HTTP ")


def test_a_plain_site_trips_only_the_header_checks(lab_runs):
    _, _, plain = lab_runs
    fired = sorted({r.template for r in plain.results if "headers" not in BY_ID[r.template].info.tags})
    assert fired == []
