"""The Timeline page: what changed, by target and type, and the scheduled runs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.jobs import health_summary
from app.monitor import events as timeline
from app.monitor import scheduler
from app.monitor.changes import EVENT_TYPES
from app.recon import targets
from app.web.api import RowIdFilter
from app.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, target_id: RowIdFilter = None, type: str | None = None) -> HTMLResponse:
    types = [type] if type in EVENT_TYPES else None
    context = {
        "events": timeline.list_events(target_id=target_id, types=types, limit=300),
        "targets": {t.id: t.name for t in targets.list_targets()},
        "types": EVENT_TYPES,
        "type": types[0] if types else None,
        "target_id": target_id,
        "health": health_summary(),
        "scheduled": scheduler.upcoming(),
    }
    return templates.TemplateResponse(request, "events.html", context)
