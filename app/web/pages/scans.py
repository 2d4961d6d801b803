"""The Scans pages: the list with the start form, one scan live (state, progress, log) then its results."""

from __future__ import annotations

import re
from html import escape

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from app.errors import InvalidArguments, ScanError, ScanNotFound
from app.jobs import cancel, health_summary, log_tail
from app.recon import modules, scans, targets
from app.web.auth import require_admin
from app.web.templating import require_htmx, templates

router = APIRouter(include_in_schema=False)


def _scans_context() -> dict:
    return {"scans": [scans.to_dict(s, with_result=False) for s in scans.list_scans(limit=100)]}


@router.get("/scans", response_class=HTMLResponse)
def scans_page(request: Request) -> HTMLResponse:
    context = _scans_context() | {
        "health": health_summary(),
        "modules": modules(),
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
    lines = log_tail(scan["job_id"], SCAN_LOG_LINES) if scan["job_id"] else []
    return {"scan": scan, "log": lines, "active": scan["status"] in scans.ACTIVE}


@router.get("/scans/{scan_id}", response_class=HTMLResponse)
def scan_page(request: Request, scan_id: str) -> HTMLResponse:
    context = _scan_live_context(scan_id, with_result=True) | {"health": health_summary()}
    return templates.TemplateResponse(request, "scan.html", context)


@router.get("/ui/scans/{scan_id}/live", response_class=HTMLResponse)
def scan_live(request: Request, scan_id: str) -> HTMLResponse:
    """State, progress and log of a scan, polled by its page; once the scan is over, the answer also
    carries the results (swapped out of band) and its status (286) stops the polling."""
    try:
        context = _scan_live_context(scan_id, with_result=False)
    except ScanNotFound:
        return HTMLResponse('<p class="error">This scan no longer exists.</p>', status_code=STOP_POLLING)
    if context["active"]:
        return templates.TemplateResponse(request, "_scan_live.html", context)
    context["scan"]["result"] = scans.get(scan_id).result
    final = context | {"final": True, "oob": True}
    return templates.TemplateResponse(request, "_scan_live.html", final, STOP_POLLING)


@router.post("/ui/scans", response_class=HTMLResponse)
async def start_scan(request: Request, background: BackgroundTasks) -> HTMLResponse:
    require_htmx(request)
    form = await request.form()
    try:
        scan, _ = await run_in_threadpool(
            scans.create, str(form.get("target", "")), list(form.getlist("modules")) or None, None, background
        )
    except (ScanError, InvalidArguments) as exc:
        return templates.TemplateResponse(request, "_notice.html", {"error": str(exc)}, status_code=422)
    text = f'Scan <a href="/scans/{scan.id}">{scan.id[:8]}</a> of {escape(scan.target)} queued.'
    return HTMLResponse(text, status_code=202)


@router.post("/ui/scans/{scan_id}/cancel", response_class=HTMLResponse)
def cancel_scan(request: Request, scan_id: str) -> HTMLResponse:
    require_htmx(request)
    require_admin(request)
    scan = scans.get(scan_id)
    if scan.job_id:
        cancel(scan.job_id)
    return HTMLResponse(f"Cancel requested for scan {escape(scan_id[:8])}.")
