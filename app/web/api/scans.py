"""JSON API for scans: start, inspect, list, cancel."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from app.errors import ScanError
from app.jobs import cancel
from app.models import Job, Scan
from app.recon import scans
from app.web.api import RowIdFilter, UnicodeOnly

router = APIRouter(prefix="/api/v1", tags=["recon"])

_SCAN_ID = re.compile(r"^[0-9a-f]{32}$")


def _scan(scan_id: str) -> Scan:
    if not _SCAN_ID.match(scan_id):
        raise HTTPException(404, f"no scan with id {scan_id!r} (scan ids are 32 hexadecimal characters)")
    return scans.get(scan_id)


def started(created: tuple[Scan, Job]) -> dict[str, Any]:
    """What starting a scan answers (202): its job as it was queued (a worker may have started it since)."""
    scan, job = created
    return {"scan_id": scan.id, "job_id": job.id, "status": job.status, "backend": job.backend}


@router.post("/scans", status_code=202)
async def start_scan(
    background: BackgroundTasks,
    body: Annotated[dict[str, Any], Body(description='{"target", "modules"?, "options"?}'), UnicodeOnly],
) -> dict[str, Any]:
    """Queue a scan of a stored target (name or id) or of a domain, IP/CIDR or URL."""
    unknown = sorted(set(body) - {"target", "modules", "options"})
    if unknown:
        raise ScanError(f"unknown field(s): {', '.join(unknown)}; a scan takes target, modules, options")
    if "target" not in body:
        raise ScanError("'target' is required: a target's name or id, a domain, an IP/CIDR or a URL")
    created = await run_in_threadpool(
        scans.create, body["target"], body.get("modules"), body.get("options"), background=background
    )
    return started(created)


@router.get("/scans")
def list_scans(target_id: RowIdFilter = None, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    rows = [scans.to_dict(s, with_result=False) for s in scans.list_scans(target_id=target_id, limit=limit)]
    return {"scans": rows, "count": len(rows)}


@router.get("/scans/{scan_id}")
def get_scan(scan_id: str) -> dict[str, Any]:
    """Status, stage, progress, counts and the result document (partial while it runs)."""
    return scans.to_dict(_scan(scan_id))


@router.post("/scans/{scan_id}/cancel")
def cancel_scan(scan_id: str) -> dict[str, Any]:
    scan = _scan(scan_id)
    if scan.job_id:
        cancel(scan.job_id)
    return scans.to_dict(scans.get(scan_id), with_result=False)
