"""HTML pages (Jinja2 + HTMX). Thin: every action calls the same functions as the API."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

from fastapi import APIRouter, BackgroundTasks, Form, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app import dispatch, joblog, jobs, registry, scans, schedules, targets
from app.models import JobStatus
from app.registry import QUEUES, InvalidArguments
from app.secrets import store as secret_store
from app.settings import PROJECT_ROOT
from app.web.api import RowIdFilter
from app.web.auth import require_admin
from app.web.status import health

TEMPLATES_DIR = Path(PROJECT_ROOT / "templates")
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

router = APIRouter(include_in_schema=False)


def _require_htmx(request: Request) -> None:
    # These endpoints answer HTML fragments for htmx (which sends this header); scripts use the
    # JSON API. A cross-site form cannot send it either: one more layer beside the CSRF token.
    if request.headers.get("HX-Request") != "true":
        raise HTTPException(403, "this action must be sent from the AssetMon page")


def _jobs_context(status: str | None, queue: str | None = None, name: str | None = None) -> dict:
    filter_status = status if status in {s.value for s in JobStatus} else None
    filter_queue = queue if queue in QUEUES else None
    filter_name = name or None
    rows = jobs.list_jobs(status=filter_status, queue=filter_queue, name=filter_name, limit=100)
    query = "&".join(
        f"{k}={v}" for k, v in (("status", filter_status), ("queue", filter_queue), ("name", filter_name)) if v
    )
    return {
        "jobs": [jobs.to_dict(j) for j in rows],
        "status": filter_status,
        "queue": filter_queue,
        "name": filter_name,
        "query": query,
    }


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    status: str | None = Query(default=None, max_length=20),
    queue: str | None = Query(default=None, max_length=50),
    name: str | None = Query(default=None, max_length=100),
) -> HTMLResponse:
    context = _jobs_context(status, queue, name) | {
        "health": health(),
        "statuses": [s.value for s in JobStatus],
        "queues": QUEUES,
        "tasks": registry.all_tasks(),
        "counts": jobs.queue_counts(),
    }
    return templates.TemplateResponse(request, "jobs.html", context)


@router.get("/ui/jobs/rows", response_class=HTMLResponse)
def job_rows(
    request: Request,
    status: str | None = Query(default=None, max_length=20),
    queue: str | None = Query(default=None, max_length=50),
    name: str | None = Query(default=None, max_length=100),
) -> HTMLResponse:
    return templates.TemplateResponse(request, "_job_rows.html", _jobs_context(status, queue, name))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    job = jobs.to_dict(jobs.get_job(job_id))
    pretty = {k: json.dumps(job[k], indent=2, default=str) for k in ("kwargs", "result")}
    return templates.TemplateResponse(request, "job.html", {"job": job, "pretty": pretty, "health": health()})


@router.post("/ui/jobs/trigger", response_class=HTMLResponse)
async def trigger_job(request: Request, background: BackgroundTasks) -> HTMLResponse:
    _require_htmx(request)
    form = await request.form()
    try:
        kwargs = json.loads(str(form.get("kwargs") or "{}"))
        job = await run_in_threadpool(dispatch.submit, str(form.get("task", "")), kwargs, background=background)
    except json.JSONDecodeError as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": f"arguments: not JSON ({exc.msg})"}, 422)
    except (InvalidArguments, registry.UnknownTask) as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": str(exc)}, status_code=422)
    return HTMLResponse(f'Queued <a href="/jobs/{job.id}">{job.id[:8]}</a> ({escape(job.name)}, {job.backend}).')


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request, target_id: RowIdFilter = None, type: str | None = None) -> HTMLResponse:
    from app import changes

    types = [type] if type in changes.EVENT_TYPES else None
    context = {
        "events": changes.list_events(target_id=target_id, types=types, limit=300),
        "targets": {t.id: t.name for t in targets.list_targets()},
        "types": changes.EVENT_TYPES,
        "type": types[0] if types else None,
        "target_id": target_id,
        "health": health(),
        "scheduled": schedules.upcoming(),
    }
    return templates.TemplateResponse(request, "events.html", context)


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


def _findings_context(asset: str | None, status: str | None) -> dict:
    status = status if status in secret_store.STATUS_FILTERS else "open"  # the work still to do, by default
    return {
        "findings": secret_store.list_findings(asset=asset or None, status=status, limit=200),
        "asset": asset or None,
        "status": status,
        "counts": secret_store.counts(asset=asset or None),
    }


@router.get("/secrets", response_class=HTMLResponse)
def secrets_page(
    request: Request,
    asset: str | None = Query(default=None, max_length=255),
    status: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    context = _findings_context(asset, status) | {"health": health(), "assets": secret_store.assets()}
    return templates.TemplateResponse(request, "secrets.html", context)


@router.get("/ui/secrets/rows", response_class=HTMLResponse)
def finding_rows(
    request: Request,
    asset: str | None = Query(default=None, max_length=255),
    status: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    return templates.TemplateResponse(request, "_finding_rows.html", _findings_context(asset, status))


@router.post("/ui/secrets/scan", response_class=HTMLResponse)
def scan_url(request: Request, background: BackgroundTasks, url: str = Form(default="")) -> HTMLResponse:
    _require_htmx(request)
    try:
        job = dispatch.submit("secrets_scan_url", {"url": url}, background=background)
    except InvalidArguments as exc:
        message = str(exc).removeprefix("invalid arguments for secrets_scan_url: url: ")
        return templates.TemplateResponse(request, "_notice.html", {"error": message}, status_code=422)
    return templates.TemplateResponse(request, "_notice.html", {"job": jobs.to_dict(job)}, status_code=202)


def _scans_context() -> dict:
    return {"scans": [scans.to_dict(s, with_result=False) for s in scans.list_scans(limit=100)]}


@router.get("/scans", response_class=HTMLResponse)
def scans_page(request: Request) -> HTMLResponse:
    context = _scans_context() | {
        "health": health(),
        "modules": scans.MODULES,
        "targets": [targets.to_dict(t) for t in targets.list_targets()],
    }
    return templates.TemplateResponse(request, "scans.html", context)


@router.get("/ui/scans/rows", response_class=HTMLResponse)
def scan_rows(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "_scan_rows.html", _scans_context())


SCAN_LOG_LINES = 200  # the log lines a scan page shows (the newest)
STOP_POLLING = 286  # htmx stops polling an element when its answer has this status


def _scan_live_context(scan_id: str, with_result: bool) -> dict:
    if not re.fullmatch(r"[0-9a-f]{32}", scan_id):
        raise HTTPException(404, f"no scan with id {scan_id!r}")
    scan = scans.to_dict(scans.get(scan_id), with_result=with_result)
    lines = joblog.tail(scan["job_id"], SCAN_LOG_LINES) if scan["job_id"] else []
    return {"scan": scan, "log": lines, "active": scan["status"] in scans.ACTIVE}


@router.get("/scans/{scan_id}", response_class=HTMLResponse)
def scan_page(request: Request, scan_id: str) -> HTMLResponse:
    context = _scan_live_context(scan_id, with_result=True) | {"health": health()}
    return templates.TemplateResponse(request, "scan.html", context)


@router.get("/ui/scans/{scan_id}/live", response_class=HTMLResponse)
def scan_live(request: Request, scan_id: str) -> HTMLResponse:
    """State, progress and log of a scan, polled by its page; once the scan is over, the answer also
    carries the results (swapped out of band) and its status (286) stops the polling."""
    try:
        context = _scan_live_context(scan_id, with_result=False)
    except scans.ScanNotFound:
        return HTMLResponse('<p class="error">This scan no longer exists.</p>', status_code=STOP_POLLING)
    if context["active"]:
        return templates.TemplateResponse(request, "_scan_live.html", context)
    context["scan"]["result"] = scans.get(scan_id).result
    final = context | {"final": True, "oob": True}
    return templates.TemplateResponse(request, "_scan_live.html", final, STOP_POLLING)


@router.post("/ui/scans", response_class=HTMLResponse)
async def start_scan(request: Request, background: BackgroundTasks) -> HTMLResponse:
    _require_htmx(request)
    form = await request.form()
    try:
        scan = await run_in_threadpool(
            scans.create, str(form.get("target", "")), list(form.getlist("modules")) or None, None, background
        )
    except (scans.ScanError, InvalidArguments) as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": str(exc)}, status_code=422)
    text = f'Scan <a href="/scans/{scan.id}">{scan.id[:8]}</a> of {escape(scan.target)} queued.'
    return HTMLResponse(text, status_code=202)


@router.post("/ui/scans/{scan_id}/cancel", response_class=HTMLResponse)
def cancel_scan(request: Request, scan_id: str) -> HTMLResponse:
    _require_htmx(request)
    require_admin(request)
    scan = scans.get(scan_id)
    if scan.job_id:
        dispatch.cancel(scan.job_id)
    return HTMLResponse(f"Cancel requested for scan {escape(scan_id[:8])}.")
