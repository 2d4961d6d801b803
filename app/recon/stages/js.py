"""Secrets in the JavaScript of every live web service: its scripts, lazy chunks and source maps on the
same site, fetched through the scan's pinned addresses only, scanned and stored (app/secrets/)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.jobs import current_job
from app.recon.stage import ScanRun, Stage
from app.secrets import make_matcher, store
from app.secrets.discovery import Crawler, FileResult, Limits

CONCURRENCY = 4  # sites crawled at once


async def run(scan: ScanRun) -> None:
    state = scan.state
    live = [s for s in state.services if s.get("status") is not None and s["status"] < 500]
    matcher = make_matcher()
    limits = Limits.from_settings()
    job_id = current_job().job_id
    report = scan.reporter(lambda done, total: f"Scanning JavaScript of {done:,} of {total:,} sites")
    gate = asyncio.Semaphore(CONCURRENCY)
    done = 0
    scan.log(f"Scanning the JavaScript of {len(live):,} live sites")

    def on_file(item: FileResult) -> None:
        if item.kind == "script" and not item.skipped:
            state.js_files.add(item.url)
        if item.findings:
            store.record(item.findings, item.url, job_id)
        for f in item.findings:
            state.secrets.append(
                {"rule": f.rule, "url": item.url, "line": f.line, "secret": f.redacted(), "fingerprint": f.fingerprint}
            )

    async def crawl(service: dict[str, Any]) -> None:
        nonlocal done
        async with gate:
            result = await Crawler(service["url"], matcher, limits, on_file, pin=state.pin).run()
            state.warnings += [f"{service['url']}: {w}" for w in result.warnings]
            done += 1
            report(done, len(live))

    await asyncio.gather(*(crawl(s) for s in live))


def summary(scan: ScanRun) -> str:
    return f"JavaScript: {len(scan.state.js_files):,} files, {len(scan.state.secrets):,} secrets"


STAGE = Stage(
    name="js",
    module="js",
    help="the JavaScript of every live web service (scripts, chunks, source maps), scanned for secrets",
    needs=("http",),
    after=("http",),
    weight=15,
    run=run,
    summary=summary,
)
