"""The Secrets pages: findings by status and asset, a URL scan; one finding with its redacted context,
and its htmx actions: reveal the value, triage (admins only, audited)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from app.errors import InvalidArguments, TriageError
from app.jobs import health_summary, submit, to_dict
from app.secrets import store, triage, verified, verify, webscan
from app.secrets.rules import CONFIDENCES
from app.settings import get_settings
from app.web.api import RowId
from app.web.auth import client_ip, require_admin
from app.web.templating import require_htmx, templates

router = APIRouter(include_in_schema=False)

MAX_SIGHTINGS = 50  # the newest places shown on the page; the API lists them all


def _findings_context(asset: str | None, status: str | None, confidence: str | None) -> dict:
    status = status if status in store.STATUS_FILTERS else "open"  # the work still to do, by default
    confidence = confidence if confidence in CONFIDENCES else "low"
    return {
        "findings": store.list_findings(asset=asset or None, status=status, min_confidence=confidence, limit=200),
        "asset": asset or None,
        "status": status,
        "confidence": confidence,
        "counts": store.counts(asset=asset or None),
    }


@router.get("/secrets", response_class=HTMLResponse)
def secrets_page(
    request: Request,
    asset: str | None = Query(default=None, max_length=255),
    status: str | None = Query(default=None, max_length=20),
    confidence: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    context = _findings_context(asset, status, confidence) | {"health": health_summary(), "assets": store.assets()}
    return templates.TemplateResponse(request, "secrets.html", context)


@router.get("/ui/secrets/rows", response_class=HTMLResponse)
def finding_rows(
    request: Request,
    asset: str | None = Query(default=None, max_length=255),
    status: str | None = Query(default=None, max_length=20),
    confidence: str | None = Query(default=None, max_length=20),
) -> HTMLResponse:
    context = _findings_context(asset, status, confidence)
    return templates.TemplateResponse(request, "_finding_rows.html", context)


@router.post("/ui/secrets/scan", response_class=HTMLResponse)
def scan_url(request: Request, background: BackgroundTasks, url: str = Form(default="")) -> HTMLResponse:
    require_htmx(request)
    try:
        job = submit(webscan.JOB, {"url": url}, background=background)
    except InvalidArguments as exc:
        message = str(exc).removeprefix(f"invalid arguments for {webscan.JOB}: url: ")
        return templates.TemplateResponse(request, "_notice.html", {"error": message}, status_code=422)
    return templates.TemplateResponse(request, "_notice.html", {"job": to_dict(job)}, status_code=202)


def highlighted(context: str, redacted: str) -> Markup:
    """The context as HTML: every character escaped, then the redacted secret wrapped in <mark>.

    The context comes from a scanned target and may hold any markup; it is never marked safe as is."""
    if not redacted:
        return escape(context)
    mark = Markup('<mark class="secret-mark">{}</mark>').format(redacted)
    return mark.join(escape(part) for part in context.split(redacted))


@router.get("/secrets/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, finding_id: RowId) -> HTMLResponse:
    finding = store.get_finding(finding_id, max_sightings=MAX_SIGHTINGS)
    context = {
        "f": finding,
        "context_html": highlighted(store.display_context(finding["context"]), finding["secret"]),
        "can_verify": get_settings().secrets_verify and verify.verifiers().get(finding["rule"]) is not None,
        "health": health_summary(),
    }
    return templates.TemplateResponse(request, "secret.html", context)


@router.post("/ui/secrets/findings/{finding_id}/reveal", response_class=HTMLResponse)
def reveal_finding(request: Request, finding_id: RowId) -> HTMLResponse:
    require_htmx(request)
    user = require_admin(request)
    value = store.reveal(finding_id, actor=user.username, ip=client_ip(request))
    return templates.TemplateResponse(request, "_revealed.html", {"value": value})


@router.post("/ui/secrets/findings/{finding_id}/verify", response_class=HTMLResponse)
def verify_finding(request: Request, finding_id: RowId) -> HTMLResponse:
    require_htmx(request)
    user = require_admin(request)
    finding = verified.verify_finding(finding_id, actor=user.username, ip=client_ip(request))
    return templates.TemplateResponse(request, "_secret_verification.html", {"f": finding, "can_verify": True})


@router.post("/ui/secrets/findings/{finding_id}/triage", response_class=HTMLResponse)
def triage_finding(
    request: Request, finding_id: RowId, status: str = Form(default=""), note: str = Form(default="")
) -> HTMLResponse:
    """Mark false positive / resolved, or reopen; answers with the triage panel as it is now."""
    require_htmx(request)
    user = require_admin(request)
    error = None
    try:
        if status == "open":
            triage.reopen(finding_id, actor=user.username, ip=client_ip(request))
        else:
            triage.mark(finding_id, status, note, actor=user.username, ip=client_ip(request))
    except TriageError as exc:
        error = str(exc)
    finding = store.get_finding(finding_id, max_sightings=MAX_SIGHTINGS)
    context = {"f": finding, "error": error, "note": note if error else ""}
    return templates.TemplateResponse(request, "_secret_triage.html", context, status_code=422 if error else 200)
