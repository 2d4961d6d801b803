"""The page of one secret finding, and its htmx actions: reveal the value, triage (admins only, audited)."""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from app.secrets import store, triage
from app.web.api import RowId
from app.web.auth import client_ip, require_admin
from app.web.pages import _require_htmx, templates
from app.web.status import health

router = APIRouter(include_in_schema=False)

MAX_SIGHTINGS = 50  # the newest places shown on the page; the API lists them all


def highlighted(context: str, redacted: str) -> Markup:
    """The context as HTML: every character escaped, then the redacted secret wrapped in <mark>.

    The context comes from a scanned target and may hold any markup; it is never marked safe as is."""
    if not redacted:
        return escape(context)
    mark = Markup('<mark class="secret-mark">{}</mark>').format(redacted)
    return mark.join(escape(part) for part in context.split(redacted))


def _finding(finding_id: int) -> dict:
    try:
        return store.get_finding(finding_id, max_sightings=MAX_SIGHTINGS)
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/secrets/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, finding_id: RowId) -> HTMLResponse:
    finding = _finding(finding_id)
    context = {
        "f": finding,
        "context_html": highlighted(store.display_context(finding["context"]), finding["secret"]),
        "health": health(),
    }
    return templates.TemplateResponse(request, "secret.html", context)


@router.post("/ui/secrets/findings/{finding_id}/reveal", response_class=HTMLResponse)
def reveal_finding(request: Request, finding_id: RowId) -> HTMLResponse:
    _require_htmx(request)
    user = require_admin(request)
    try:
        value = store.reveal(finding_id, actor=user.username, ip=client_ip(request))
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return templates.TemplateResponse(request, "_revealed.html", {"value": value})


@router.post("/ui/secrets/findings/{finding_id}/triage", response_class=HTMLResponse)
def triage_finding(
    request: Request, finding_id: RowId, status: str = Form(default=""), note: str = Form(default="")
) -> HTMLResponse:
    """Mark false positive / resolved, or reopen; answers with the triage panel as it is now."""
    _require_htmx(request)
    user = require_admin(request)
    error = None
    try:
        if status == "open":
            triage.reopen(finding_id, actor=user.username, ip=client_ip(request))
        else:
            triage.mark(finding_id, status, note, actor=user.username, ip=client_ip(request))
    except store.FindingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except triage.TriageError as exc:
        error = str(exc)
    context = {"f": _finding(finding_id), "error": error, "note": note if error else ""}
    return templates.TemplateResponse(request, "_secret_triage.html", context, status_code=422 if error else 200)
