"""JSON API for the timeline: what changed, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from app.monitor import events as timeline
from app.monitor.changes import EVENT_TYPES
from app.web.api import RowIdFilter

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


@router.get("/events")
def events(
    target_id: RowIdFilter = None,
    type: Annotated[list[str] | None, Query(description="Event type(s), e.g. port.opened")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The timeline, newest first."""
    wanted = [t for value in type or [] for t in value.split(",") if t]
    unknown = sorted(set(wanted) - set(EVENT_TYPES))
    if unknown:
        raise HTTPException(422, f"unknown event type(s) {', '.join(unknown)}; types: {', '.join(EVENT_TYPES)}")
    rows = timeline.list_events(target_id=target_id, types=wanted or None, since=since, limit=limit)
    return {"events": rows, "count": len(rows)}
