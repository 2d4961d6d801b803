"""JSON API for secret scanning: scan a URL's JavaScript, list findings per asset or job, reveal one."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app import dispatch, jobs
from app.secrets import store
from app.web.api.jobs import checked_job_id

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])
log = logging.getLogger("assetmon.secrets")


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The page whose JavaScript is fetched and scanned, e.g. https://app.example.com/")


@router.post("/scan", status_code=202)
async def scan(request: ScanRequest, background: BackgroundTasks) -> dict[str, Any]:
    """Queue a JavaScript secret scan of a web target (same-site scripts, chunks and source maps)."""
    job = await run_in_threadpool(dispatch.submit, "secrets_scan_url", {"url": request.url}, background=background)
    return {
        "job_id": job.id,
        "status": job.status,
        "backend": job.backend,
        "queue": job.queue,
        "url": job.kwargs["url"],
    }


@router.get("/findings")
def list_findings(
    asset: Annotated[str | None, Query(max_length=255, description="Host name")] = None,
    job_id: Annotated[str | None, Query(description="Findings seen by this job")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Stored findings, worst and newest first, secrets redacted. Filter by asset (host) and/or job."""
    if job_id is not None:
        jobs.get_job(checked_job_id(job_id))  # 404 for a job that does not exist
    rows = store.list_findings(asset=asset, job_id=job_id, limit=limit, offset=offset)
    return {"findings": rows, "count": len(rows)}


@router.get("/assets")
def list_assets() -> dict[str, Any]:
    """Assets (hosts) with stored secrets, and how many each has."""
    return {"assets": store.assets()}


@router.get("/findings/{finding_id}")
def get_finding(finding_id: int) -> dict[str, Any]:
    try:
        return store.get_finding(finding_id)
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/findings/{finding_id}/reveal")
def reveal(finding_id: int, request: Request) -> dict[str, Any]:
    """The full secret value. An explicit action, logged with the caller's address."""
    try:
        value = store.reveal(finding_id)
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    log.warning("secret finding %s revealed to %s", finding_id, request.client.host if request.client else "?")
    return {"id": finding_id, "secret": value}
