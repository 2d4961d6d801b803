"""Exposure checks on every live web service: AssetMon's own templates and the user's (TEMPLATES_DIRS),
through the scan's pinned addresses only (app/checks/). Options: `check_tags` and `check_severity`
narrow the templates run."""

from __future__ import annotations

from typing import Any

from app.checks.loader import Filters, load_templates
from app.checks.runner import CheckResult, RunOptions, run_templates
from app.errors import InvalidInput, ScanError
from app.recon.stage import Option, ScanRun, Stage

MAX_OPTION_ITEMS = 50


def check_names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value):
        raise ScanError('check_tags / check_severity must be a list of short strings, e.g. ["exposure"]')
    if len(value) > MAX_OPTION_ITEMS:
        raise ScanError(f"at most {MAX_OPTION_ITEMS} values in check_tags / check_severity")
    return value


def check_severity(value: Any) -> list[str]:
    names = check_names(value)
    try:
        Filters.from_lists(severities=names)
    except InvalidInput as exc:
        raise ScanError(f"check_severity: {exc}") from None
    return names


def _entry(result: CheckResult) -> dict[str, Any]:
    return {
        "check": result.template,
        "name": result.name,
        "severity": result.severity,
        "url": result.url,
        "target": result.target,
        "tags": list(result.tags),
        "matchers": result.matchers,
        "extracted": result.extracted[:10],
        "status": result.status,
        "references": list(result.references[:5]),
        "fingerprint": result.fingerprint,
    }


async def run(scan: ScanRun) -> None:
    state = scan.state
    s = scan.settings
    live = sorted({svc["url"] for svc in state.services if svc.get("status") is not None})
    filters = Filters.from_lists(
        tags=scan.options.get("check_tags") or (), severities=scan.options.get("check_severity") or ()
    )
    loaded = load_templates(s.template_folders, filters=filters)
    if loaded.skipped:
        scan.log(f"Checks: {len(loaded.skipped):,} templates skipped ({loaded.stats()['skipped_by_reason']})")
    scan.log(f"Running {len(loaded.templates):,} checks on {len(live):,} web services")
    report = scan.reporter(lambda done, total: f"Checks: {done:,} of {total:,} (check, service) pairs done")
    options = RunOptions.from_settings(s, pin=state.pin)

    def on_result(result: CheckResult) -> None:
        state.checks.append(_entry(result))

    result = await run_templates(live, loaded.templates, options, on_result=on_result, on_progress=report)
    if result.errors:
        state.warnings.append(f"checks: {result.errors:,} of {result.requests:,} requests failed")


def summary(scan: ScanRun) -> str:
    return f"Checks: {len(scan.state.checks):,} findings"


STAGE = Stage(
    name="checks",
    module="checks",
    default=False,  # ~100 requests per web service: a scan asks for it (modules=[..., "checks"])
    help="exposure checks (nuclei-format templates: ours and TEMPLATES_DIRS) on every live web service",
    needs=("http",),
    after=("http", "js"),
    weight=15,
    options={
        "check_tags": Option(check_names, "only checks with one of these tags"),
        "check_severity": Option(check_severity, "only checks of these severities"),
    },
    run=run,
    summary=summary,
)
