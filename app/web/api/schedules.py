"""JSON API for scheduled runs: what runs next, and changing when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.errors import ScheduleError
from app.monitor import scheduler
from app.recon import targets
from app.web.api import RowId, UnicodeOnly

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


@router.get("/jobs/scheduled")
def scheduled() -> dict[str, Any]:
    """Targets with a schedule, soonest run first."""
    rows = scheduler.upcoming()
    return {"scheduled": rows, "count": len(rows)}


@router.post("/jobs/scheduled/{target_id}/reschedule")
def reschedule(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"schedule": {"every_seconds": N} | {"cron": "..."} | null, "next_run_at"?: ISO time}"""
    unknown = sorted(set(body) - {"schedule", "next_run_at"})
    if unknown or "schedule" not in body and "next_run_at" not in body:
        raise ScheduleError('send {"schedule": {...}} and/or {"next_run_at": "2026-01-01T00:00:00Z"}')
    current = targets.get(target_id)
    schedule = body.get("schedule", current.schedule)
    when = None
    if body.get("next_run_at") is not None:
        try:
            when = datetime.fromisoformat(str(body["next_run_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise ScheduleError("next_run_at must be an ISO 8601 time") from None
    return targets.to_dict(scheduler.set_schedule(target_id, schedule, when))
