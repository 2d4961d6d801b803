"""JSON API for monitoring: scheduled runs, run now, events, importing known assets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from app import changes, inventory, scans, schedules, targets
from app.web.api import RowId, RowIdFilter, UnicodeOnly

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


@router.get("/jobs/scheduled")
def scheduled() -> dict[str, Any]:
    """Targets with a schedule, soonest run first."""
    rows = schedules.upcoming()
    return {"scheduled": rows, "count": len(rows)}


@router.post("/jobs/scheduled/{target_id}/reschedule")
def reschedule(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"schedule": {"every_seconds": N} | {"cron": "..."} | null, "next_run_at"?: ISO time}"""
    unknown = sorted(set(body) - {"schedule", "next_run_at"})
    if unknown or "schedule" not in body and "next_run_at" not in body:
        raise schedules.ScheduleError('send {"schedule": {...}} and/or {"next_run_at": "2026-01-01T00:00:00Z"}')
    current = targets.get(target_id)
    schedule = body.get("schedule", current.schedule)
    when = None
    if body.get("next_run_at") is not None:
        try:
            when = datetime.fromisoformat(str(body["next_run_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise schedules.ScheduleError("next_run_at must be an ISO 8601 time") from None
    return targets.to_dict(schedules.set_schedule(target_id, schedule, when))


@router.post("/jobs/scheduled/{target_id}/run", status_code=202)
@router.post("/targets/{target_id}/run", status_code=202)
async def run_now(target_id: RowId, background: BackgroundTasks) -> dict[str, Any]:
    """Scan the target now (409 while one of its scans is queued or running)."""
    targets.get(target_id)
    scan = await run_in_threadpool(scans.create, str(target_id), None, None, background, "manual")
    data = scans.to_dict(scan, with_result=False)
    return {"scan_id": scan.id, "job_id": scan.job_id, "status": data["status"], "backend": data["backend"]}


@router.get("/events")
def events(
    target_id: RowIdFilter = None,
    type: Annotated[list[str] | None, Query(description="Event type(s), e.g. port.opened")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The timeline, newest first."""
    wanted = [t for value in type or [] for t in value.split(",") if t]
    unknown = sorted(set(wanted) - set(changes.EVENT_TYPES))
    if unknown:
        raise HTTPException(422, f"unknown event type(s) {', '.join(unknown)}; types: {', '.join(changes.EVENT_TYPES)}")
    rows = changes.list_events(target_id=target_id, types=wanted or None, since=since, limit=limit)
    return {"events": rows, "count": len(rows)}


@router.post("/targets/{target_id}/import")
def import_known(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"subdomains": [...], "hosts": [...]}: already-known assets; incremental scans skip them."""
    return inventory.import_known(target_id, body)
