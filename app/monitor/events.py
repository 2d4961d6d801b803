"""The timeline: events (what changed, found by app/monitor/changes.py) as JSON, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from app.db import session_scope
from app.models import Event, iso


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "target_id": event.target_id,
        "scan_id": event.scan_id,
        "type": event.type,
        "severity": event.severity,
        "summary": event.summary,
        "data": event.data,
        "created_at": iso(event.created_at),
    }


def list_events(
    target_id: int | None = None,
    types: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    with session_scope() as session:
        query = select(Event)
        if target_id is not None:
            query = query.where(Event.target_id == target_id)
        if types:
            query = query.where(col(Event.type).in_(types))
        if since is not None:
            query = query.where(col(Event.created_at) > since)
        rows = session.exec(query.order_by(col(Event.created_at).desc(), col(Event.id).desc()).limit(limit)).all()
        return [event_dict(e) for e in rows]
