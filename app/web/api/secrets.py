"""JSON API for secret scanning: scan a URL's JavaScript, list findings per asset, job or triage status,
reveal one, triage one (the last two for admins only, and audited)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.jobs import get_job, submit
from app.models import MAX_ID
from app.secrets import store, triage, verified, webscan
from app.web.api import RowId
from app.web.api.jobs import checked_job_id
from app.web.auth import client_ip, require_admin

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The page whose JavaScript is fetched and scanned, e.g. https://app.example.com/")


@router.post("/scan", status_code=202)
async def scan(request: ScanRequest, background: BackgroundTasks) -> dict[str, Any]:
    """Queue a JavaScript secret scan of a web target (same-site scripts, chunks and source maps)."""
    job = await run_in_threadpool(submit, webscan.JOB, {"url": request.url}, background=background)
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
    status: Annotated[
        Literal["open", "false_positive", "resolved", "all"],
        Query(description="Triage status: open (not triaged), false_positive, resolved, or all"),
    ] = "all",
    min_confidence: Annotated[
        Literal["low", "medium", "high"],
        Query(description="At least this confidence: low (all), medium (a provider's prefix), high (a checksum)"),
    ] = "low",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,  # no table has more rows than ids
) -> dict[str, Any]:
    """Stored findings, worst and newest first, secrets redacted. Filter by asset (host), job, triage
    status and/or confidence."""
    if job_id is not None:
        get_job(checked_job_id(job_id))  # 404 for a job that does not exist
    rows = store.list_findings(
        asset=asset, job_id=job_id, status=status, min_confidence=min_confidence, limit=limit, offset=offset
    )
    return {"findings": rows, "count": len(rows)}


@router.get("/assets")
def list_assets() -> dict[str, Any]:
    """Assets (hosts) with stored secrets, and how many each has."""
    return {"assets": store.assets()}


@router.get("/findings/{finding_id}")
def get_finding(finding_id: RowId) -> dict[str, Any]:
    try:
        return store.get_finding(finding_id)
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/findings/{finding_id}/reveal")
def reveal(finding_id: RowId, request: Request) -> dict[str, Any]:
    """The full secret value. Admins only; every reveal is written to the audit log."""
    user = require_admin(request)
    try:
        value = store.reveal(finding_id, actor=user.username, ip=client_ip(request))
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return {"id": finding_id, "secret": value}


@router.post("/findings/{finding_id}/verify")
def verify_finding(finding_id: RowId, request: Request) -> dict[str, Any]:
    """Ask the provider whether the credential works (a read-only identity request), when SECRETS_VERIFY
    is true: 409 while it is off. Admins only; audited. The answer (verified / invalid / unknown) is kept
    with the finding, and a verified credential's severity is raised."""
    user = require_admin(request)
    return verified.verify_finding(finding_id, actor=user.username, ip=client_ip(request))


class TriageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["false_positive", "resolved", "open"] = Field(
        description="false_positive or resolved records a verdict; open removes it (reopens)"
    )
    note: str = Field(default="", max_length=triage.MAX_NOTE, description="Why, for the next person")


@router.post("/findings/{finding_id}/triage")
def set_triage(finding_id: RowId, body: TriageRequest, request: Request) -> dict[str, Any]:
    """Mark a secret a false positive or resolved, or reopen it. The verdict is kept by fingerprint:
    it applies to this secret on every asset and holds across later scans. Admins only; audited."""
    user = require_admin(request)
    try:
        if body.status == "open":
            triage.reopen(finding_id, actor=user.username, ip=client_ip(request))
        else:
            triage.mark(finding_id, body.status, body.note, actor=user.username, ip=client_ip(request))
        return store.get_finding(finding_id)
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except triage.TriageError as exc:
        raise HTTPException(422, str(exc)) from None
