"""The Jobs pages: the list with filters and live rows, one job, trigger, cancel, requeue; the mode badge."""

from __future__ import annotations

import json
from html import escape

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from app.errors import InvalidArguments, UnknownTask
from app.jobs import cancel, get_job, health_summary, list_jobs, queue_counts, registry, requeue, submit, to_dict
from app.models import JobStatus
from app.settings import QUEUES
from app.web.templating import require_htmx, templates

router = APIRouter(include_in_schema=False)


def _jobs_context(status: str | None, queue: str | None = None, name: str | None = None) -> dict:
    filter_status = status if status in {s.value for s in JobStatus} else None
    filter_queue = queue if queue in QUEUES else None
    filter_name = name or None
    rows = list_jobs(status=filter_status, queue=filter_queue, name=filter_name, limit=100)
    query = "&".join(
        f"{k}={v}" for k, v in (("status", filter_status), ("queue", filter_queue), ("name", filter_name)) if v
    )
    return {
        "jobs": [to_dict(j) for j in rows],
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
        "health": health_summary(),
        "statuses": [s.value for s in JobStatus],
        "queues": QUEUES,
        "tasks": registry.all_tasks(),
        "counts": queue_counts(),
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
    job = to_dict(get_job(job_id))
    pretty = {k: json.dumps(job[k], indent=2, default=str) for k in ("kwargs", "result")}
    return templates.TemplateResponse(request, "job.html", {"job": job, "pretty": pretty, "health": health_summary()})


@router.post("/ui/jobs/trigger", response_class=HTMLResponse)
async def trigger_job(request: Request, background: BackgroundTasks) -> HTMLResponse:
    require_htmx(request)
    form = await request.form()
    try:
        kwargs = json.loads(str(form.get("kwargs") or "{}"))
        job = await run_in_threadpool(submit, str(form.get("task", "")), kwargs, background=background)
    except json.JSONDecodeError as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": f"arguments: not JSON ({exc.msg})"}, 422)
    except (InvalidArguments, UnknownTask) as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": str(exc)}, status_code=422)
    return HTMLResponse(f'Queued <a href="/jobs/{job.id}">{job.id[:8]}</a> ({escape(job.name)}, {job.backend}).')


@router.get("/ui/mode", response_class=HTMLResponse)
def mode_badge(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "_mode_badge.html", {"health": health_summary()})


@router.post("/ui/jobs/{job_id}/cancel", response_class=HTMLResponse)
def cancel_job(request: Request, job_id: str) -> HTMLResponse:
    require_htmx(request)
    job = cancel(job_id)
    return templates.TemplateResponse(request, "_job_row.html", {"job": to_dict(job)})


@router.post("/ui/jobs/{job_id}/requeue", response_class=HTMLResponse)
def requeue_job(request: Request, job_id: str, background: BackgroundTasks) -> HTMLResponse:
    require_htmx(request)
    job = requeue(job_id, background=background)
    return templates.TemplateResponse(request, "_job_row.html", {"job": to_dict(job)})
