"""The dashboard at `/`: counts, the latest events, jobs at work, the latest scans and the job mode.

The page polls three small fragments: the jobs at work (with the latest scans, out of band) every 2 s,
the counts (with the events, out of band) every 10 s, and the mode card every 5 s.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.jobs import health_summary
from app.monitor import overview
from app.web.templating import templates

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    context = overview.summary() | {"health": health_summary()}
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/ui/dashboard/jobs", response_class=HTMLResponse)
def dashboard_jobs(request: Request) -> HTMLResponse:
    context = {"jobs": overview.active_jobs(), "scans": overview.recent_scans(), "oob": True}
    return templates.TemplateResponse(request, "_dash_jobs.html", context)


@router.get("/ui/dashboard/counts", response_class=HTMLResponse)
def dashboard_counts(request: Request) -> HTMLResponse:
    context = {"counts": overview.counts(), "events": overview.recent_events(), "oob": True}
    return templates.TemplateResponse(request, "_dash_counts.html", context)


@router.get("/ui/dashboard/mode", response_class=HTMLResponse)
def dashboard_mode(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "_dash_mode.html", {"health": health_summary()})
