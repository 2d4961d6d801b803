"""A recon scan, stage by stage: the stages its modules call for (app/recon/stages/), in their order.

One async pipeline in the job's process: stages that fan out (thousands of DNS queries, port probes,
HTTP requests) do so inside the event loop, so no task ever waits on another task; a stage that can be
shared (ports) hands its slices to every worker on the scan's queue. Every address is checked against
the target's scope before anything connects to it; the scan row records each stage as it starts and
the results so far as it ends, so a cancelled or failed scan shows where it stopped; progress is
reported (and cancellation honoured) between batches through the job context.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from app.jobs import current_job
from app.net.names import is_address
from app.recon import scans, stages
from app.recon.stage import ScanRun
from app.scanners import dns
from app.settings import get_settings

COUNTED = ("subdomains", "wildcards", "hosts", "services", "secrets")


def run_scan(scan_id: str) -> dict[str, Any]:
    """Run every stage of the scan row `scan_id` and write its result on the row; returns the counts."""
    scan = scans.get(scan_id)
    plan = stages.plan(scan.modules)
    run = ScanRun(scan, get_settings(), plan)
    current_job().progress(0, f"Starting scan of {scan.target}", force=True)
    try:
        document = asyncio.run(_run(run))
    finally:
        scans.mark_finished(scan_id)
    counts = scans.get(scan_id).counts
    return {"scan_id": scan_id, "counts": counts, "warnings": len(document["warnings"])}


def summary_line(counts: dict[str, int]) -> str:
    """'12 subdomains, 4 hosts, 6 services, 1 secrets'"""
    return ", ".join(
        f"{counts.get(k, 0):,} {k.replace('_', ' ')}" for k in ("subdomains", "hosts", "services", "secrets")
    )


async def _run(run: ScanRun) -> dict[str, Any]:
    if _needs_dns(run):
        specs = run.options.get("resolvers")
        run.resolver = dns.Resolver([dns.parse_resolver(s) for s in specs] if specs else None)
    try:
        for stage in stages.plan(run.modules):
            run.stage = stage.name
            _save(run, stage.name)
            await stage.run(run)
            line = stage.summary(run) if stage.summary else None
            if line:
                run.log(line)
            run.log_warnings()
        return _save(run, "done")
    finally:
        if run.resolver is not None:
            await run.resolver.aclose()


def _needs_dns(run: ScanRun) -> bool:
    scope = run.state.scope
    return bool(scope.domains or any(not is_address(urlsplit(u).hostname or "") for u in scope.urls))


def _save(run: ScanRun, stage: str) -> dict[str, Any]:
    document = run.state.document(run.scan.target)
    counts = {key: len(document[key]) for key in COUNTED}
    counts["open_ports"] = sum(len(h["open_ports"]) for h in document["hosts"])
    scans.save(run.scan.id, stage=stage, counts=counts, result=document)
    return document
