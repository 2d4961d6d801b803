"""Scan a web target's JavaScript for secrets and store what is found: what the job runs."""

from __future__ import annotations

from typing import Any

from app.jobs.context import current_job
from app.secrets import store
from app.secrets.discovery import Discovery, FileResult, discover
from app.secrets.report import finding_dict

JOB = "secrets_scan_url"  # the job that runs scan_url (app/tasks.py)
# The job result is a summary; every finding is in the database, with all its locations.
MAX_RESULT_FINDINGS = 500
MAX_RESULT_ENDPOINTS = 1000


def scan_url(url: str, persist: bool = True) -> dict[str, Any]:
    ctx = current_job()
    new = 0

    def on_file(item: FileResult) -> None:
        nonlocal new
        if persist and item.findings:
            new += store.record(item.findings, item.url, ctx.job_id)

    ctx.progress(0, f"fetching {url}", force=True)
    result = discover(url, on_file=on_file)
    ctx.progress(100, summary_line(result), force=True)
    return as_result(result, new if persist else None)


def summary_line(result: Discovery) -> str:
    fetched = sum(1 for f in result.files if not f.skipped)
    count = len(result.findings)
    return f"{fetched:,} files scanned, {count:,} secret{'s' if count != 1 else ''} found"


def as_result(result: Discovery, new: int | None) -> dict[str, Any]:
    findings = result.findings
    endpoints = list(result.endpoints.items())
    body: dict[str, Any] = {
        "url": result.target,
        "asset": store.asset_of(result.target),
        "files_scanned": sum(1 for f in result.files if not f.skipped),
        "files_skipped": sum(1 for f in result.files if f.skipped),
        "bytes_scanned": result.bytes_fetched,
        "seconds": result.seconds,
        "findings": [{**finding_dict(f), "url": f.file} for f in findings[:MAX_RESULT_FINDINGS]],
        "files": [f.as_dict() for f in result.files],
        "endpoints": [{"value": v, "source": s} for v, s in endpoints[:MAX_RESULT_ENDPOINTS]],
        "warnings": list(result.warnings),
    }
    if new is not None:
        body["new_findings"] = new
    if len(findings) > MAX_RESULT_FINDINGS:
        body["warnings"].append(f"{len(findings):,} findings; the first {MAX_RESULT_FINDINGS} are listed here")
    if len(endpoints) > MAX_RESULT_ENDPOINTS:
        body["warnings"].append(f"{len(endpoints):,} endpoints; the first {MAX_RESULT_ENDPOINTS} are listed here")
    return body
