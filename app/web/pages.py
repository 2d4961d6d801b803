"""HTML pages (Jinja2 + HTMX). Thin: every action calls the same functions as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from app import dispatch, jobs
from app.models import JobStatus
from app.settings import PROJECT_ROOT
from app.web.status import health

TEMPLATES_DIR = Path(PROJECT_ROOT / "templates")
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

router = APIRouter(include_in_schema=False)


def _require_htmx(request: Request) -> None:
    # State-changing UI actions come from htmx, which sends this header; a cross-site
    # form cannot, so this doubles as CSRF protection until sessions arrive.
    if request.headers.get("HX-Request") != "true":
        raise HTTPException(403, "this action must be sent from the AssetMon page")


def _jobs_context(status: str | None) -> dict:
    filter_status = status if status in {s.value for s in JobStatus} else None
    return {"jobs": [jobs.to_dict(j) for j in jobs.list_jobs(status=filter_status, limit=100)], "status": filter_status}


@router.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/jobs", status_code=303)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, status: str | None = Query(default=None, max_length=20)) -> HTMLResponse:
    context = _jobs_context(status) | {"health": health(), "statuses": [s.value for s in JobStatus]}
    return templates.TemplateResponse(request, "jobs.html", context)


@router.get("/ui/jobs/rows", response_class=HTMLResponse)
def job_rows(request: Request, status: str | None = Query(default=None, max_length=20)) -> HTMLResponse:
    return templates.TemplateResponse(request, "_job_rows.html", _jobs_context(status))


@router.get("/ui/mode", response_class=HTMLResponse)
def mode_badge(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "_mode_badge.html", {"health": health()})


@router.post("/ui/jobs/{job_id}/cancel", response_class=HTMLResponse)
def cancel_job(request: Request, job_id: str) -> HTMLResponse:
    _require_htmx(request)
    job = dispatch.cancel(job_id)
    return templates.TemplateResponse(request, "_job_row.html", {"job": jobs.to_dict(job)})


@router.post("/ui/jobs/{job_id}/requeue", response_class=HTMLResponse)
def requeue_job(request: Request, job_id: str, background: BackgroundTasks) -> HTMLResponse:
    _require_htmx(request)
    job = dispatch.requeue(job_id, background=background)
    return templates.TemplateResponse(request, "_job_row.html", {"job": jobs.to_dict(job)})
