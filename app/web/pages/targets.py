"""The Targets pages: the list with the add form, a target's tabs, their exports, edit and delete.

Every view is a plain URL (`/targets/3?tab=ports&q=10.0.&sort=port&dir=desc&page=2`): tab links,
sort headers, the filter and the pager fetch the same URL with htmx and swap only the table region
(`#target-table`); without htmx, or on reload, the same URL renders the whole page.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import FormData

from app.accounts import audit
from app.errors import ScanError
from app.jobs import health_summary
from app.models import Target
from app.recon import assets, default_modules, modules, targets
from app.web.api import RowId
from app.web.auth import client_ip, current_user, require_admin
from app.web.templating import templates

router = APIRouter(include_in_schema=False)

TAB_LABELS = {
    "subdomains": "Subdomains",
    "ports": "Hosts & ports",
    "services": "Web services",
    "js": "JavaScript",
    "secrets": "Secrets",
    "events": "Events",
    "scans": "Scan history",
}
# Each tab's table header: (label, sort key or None).
HEADERS: dict[str, list[tuple[str, str | None]]] = {
    "subdomains": [
        ("Name", "name"),
        ("Addresses", None),
        ("State", "state"),
        ("First seen", "first"),
        ("Changed (UTC)", "updated"),
    ],
    "ports": [
        ("Host", "host"),
        ("Port", "port"),
        ("State", None),
        ("First seen", "first"),
        ("Changed (UTC)", "updated"),
    ],
    "services": [
        ("URL", "url"),
        ("Status", "status"),
        ("Title", "title"),
        ("Technologies", "tech"),
        ("TLS expires", "tls"),
        ("Favicon hash", None),
        ("State", None),
        ("Changed (UTC)", "updated"),
    ],
    "js": [("URL", "url"), ("State", None), ("First seen", "first"), ("Changed (UTC)", "updated")],
    "secrets": [
        ("Severity", "severity"),
        ("Rule", "rule"),
        ("Asset", "asset"),
        ("Where", None),
        ("Secret", None),
        ("Triage", None),
        ("Seen", "seen"),
        ("Last seen (UTC)", "last"),
    ],
    "events": [
        ("When (UTC)", "created"),
        ("Severity", "severity"),
        ("Type", "type"),
        ("What happened", None),
        ("Scan", None),
    ],
    "scans": [
        ("Scan", None),
        ("State", "status"),
        ("Stage", None),
        ("Found", None),
        ("Created (UTC)", "created"),
        ("Finished (UTC)", "finished"),
    ],
}
PAGE_SIZES = (25, 50, 100, 200)
FORM_FIELDS = (
    "name",
    "domains",
    "cidrs",
    "urls",
    "include",
    "exclude",
    "schedule",
    "modules",
    "ports",
    "http_ports",
    "incremental",
)
_EVERY = re.compile(r"^(\d+)\s*([smhd]?)$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _can_edit(request: Request) -> bool:
    user = current_user(request)
    return bool(user and user.is_admin)


def _target(target_id: int) -> Target:
    try:
        return targets.get(target_id)
    except targets.TargetNotFound as exc:
        raise HTTPException(404, str(exc)) from None


# --- the add / edit form -----------------------------------------------------------------------


def _words(text: str, commas: bool = True) -> list[str]:
    return [w for w in re.split(r"[\s,]+" if commas else r"\s+", text) if w]


def _schedule(text: str) -> dict[str, Any] | None:
    """'' (none), '6h' / '30m' / '86400' (every so long) or a cron expression."""
    text = text.strip()
    if not text:
        return None
    every = _EVERY.match(text)
    if every:
        return {"every_seconds": int(every.group(1)) * _UNITS[every.group(2).lower()]}
    return {"cron": text}


def _schedule_text(schedule: dict[str, Any] | None) -> str:
    if not schedule:
        return ""
    if "cron" in schedule:
        return schedule["cron"]
    seconds = schedule["every_seconds"]
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {f: str(form.get(f) or "") for f in FORM_FIELDS if f != "modules"}
    values["modules"] = [m for m in form.getlist("modules") if m in modules()]
    values["incremental"] = bool(form.get("incremental"))
    return values


def _values_of(target: Target) -> dict[str, Any]:
    options = target.scan_options or {}
    return {
        "name": target.name,
        "domains": "\n".join(target.domains),
        "cidrs": "\n".join(target.cidrs),
        "urls": "\n".join(target.urls),
        "include": "\n".join(target.scope.get("include", [])),
        "exclude": "\n".join(target.scope.get("exclude", [])),
        "schedule": _schedule_text(target.schedule),
        "modules": options.get("modules") or list(default_modules()),
        "ports": options.get("ports", ""),
        "http_ports": ", ".join(str(p) for p in options.get("http_ports", [])),
        "incremental": bool(options.get("incremental")),
    }


def _body(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body a form stands for, and the errors only a form can make (text where a number goes)."""
    errors: dict[str, str] = {}
    options: dict[str, Any] = {}
    if set(values["modules"]) != set(default_modules()):
        options["modules"] = values["modules"]
    if values["ports"].strip():
        options["ports"] = values["ports"].strip()
    if values["http_ports"].strip():
        try:
            options["http_ports"] = [int(p) for p in _words(values["http_ports"])]
        except ValueError:
            errors["http_ports"] = "web ports are numbers, such as 80, 443, 8080"
    if values["incremental"]:
        options["incremental"] = True
    body = {
        "name": values["name"],
        "domains": _words(values["domains"]),
        "cidrs": _words(values["cidrs"]),
        "urls": _words(values["urls"], commas=False),
        "scope": {"include": _words(values["include"]), "exclude": _words(values["exclude"])},
        "schedule": _schedule(values["schedule"]),
        "scan_options": options,
    }
    return body, errors


def _field_errors(body: dict[str, Any]) -> dict[str, str]:
    """Each field checked on its own by targets.validate (the one validation there is), so every
    wrong field shows its own message at once, not just the first one found."""
    probe: dict[str, Any] = {"name": "form-check", "domains": ["example.com"]}
    parts = {
        "name": {"name": body["name"]},
        "domains": {"domains": body["domains"]} if body["domains"] else None,
        "cidrs": {"cidrs": body["cidrs"]} if body["cidrs"] else None,
        "urls": {"urls": body["urls"]} if body["urls"] else None,
        "include": {"scope": {"include": body["scope"]["include"]}},
        "exclude": {"scope": {"exclude": body["scope"]["exclude"]}},
        "schedule": {"schedule": body["schedule"]},
        "scan_options": {"scan_options": body["scan_options"]},
    }
    errors = {}
    for field, part in parts.items():
        if part is None:
            continue
        try:
            targets.validate(probe | part)
        except (targets.TargetError, ScanError) as exc:
            errors[field] = str(exc)
    return errors


def _save(values: dict[str, Any], target_id: int | None) -> tuple[Target | None, dict[str, str]]:
    """Create or update from the form; (the target, {}) or (None, {field: message})."""
    body, errors = _body(values)
    errors |= _field_errors(body)
    if errors:
        return None, errors
    try:
        saved = targets.update(target_id, body) if target_id else targets.create(body)
    except targets.TargetExists as exc:
        return None, {"name": str(exc)}
    except (targets.TargetError, ScanError) as exc:
        return None, {"form": str(exc)}  # e.g. no domain, CIDR or URL at all
    return saved, {}


def _form_answer(request: Request, values: dict[str, Any], errors: dict[str, str], target: Target | None) -> Response:
    """A refused form: the form alone for htmx, the whole page otherwise; 422 either way."""
    context = {"values": values, "errors": errors, "modules": modules(), "edit": target}
    if request.headers.get("HX-Request") == "true":
        return templates.TemplateResponse(request, "_target_form.html", context, status_code=422)
    if target is None:
        return templates.TemplateResponse(request, "targets.html", _list_context(request) | context, status_code=422)
    page = _table_context(target, assets.page(target.id, "subdomains"), assets.counts(target.id))
    context |= {"health": health_summary()}
    return templates.TemplateResponse(request, "target.html", page | context, status_code=422)


def _go(request: Request, url: str) -> Response:
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# --- the list ------------------------------------------------------------------------------------


def _list_context(request: Request) -> dict[str, Any]:
    summaries = assets.summaries()
    rows = [targets.to_dict(t) | {"found": summaries.get(t.id, {})} for t in targets.list_targets()]
    return {
        "targets": rows,
        "health": health_summary(),
        "can_edit": _can_edit(request),
        "modules": modules(),
        "values": {"modules": list(default_modules())},
        "errors": {},
        "edit": None,
    }


@router.get("/targets", response_class=HTMLResponse)
def targets_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "targets.html", _list_context(request))


@router.post("/ui/targets")
async def create_target(request: Request) -> Response:
    admin = require_admin(request)
    values = _form_values(await request.form())
    target, errors = await run_in_threadpool(_save, values, None)
    if target is None:
        return await run_in_threadpool(_form_answer, request, values, errors, None)
    await run_in_threadpool(audit.record, admin.username, "target.create", target.name, client_ip(request))
    return _go(request, f"/targets/{target.id}")


@router.post("/ui/targets/{target_id}")
async def update_target(request: Request, target_id: RowId) -> Response:
    admin = require_admin(request)
    target = await run_in_threadpool(_target, target_id)
    values = _form_values(await request.form())
    saved, errors = await run_in_threadpool(_save, values, target_id)
    if saved is None:
        return await run_in_threadpool(_form_answer, request, values, errors, target)
    await run_in_threadpool(audit.record, admin.username, "target.update", saved.name, client_ip(request))
    return _go(request, f"/targets/{target_id}")


@router.post("/ui/targets/{target_id}/delete")
def delete_target(request: Request, target_id: RowId) -> Response:
    admin = require_admin(request)
    try:
        targets.delete(target_id)
    except targets.TargetNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    audit.record(admin.username, "target.delete", f"target {target_id}", client_ip(request))
    return _go(request, "/targets")


# --- a target and its tabs -----------------------------------------------------------------------


def _href(target_id: int, query: assets.Query, page: int = 1, size: int = assets.PAGE_SIZE, path: str = "") -> str:
    """The canonical URL of a view: defaults left out, so equal views have equal URLs."""
    default = assets.Query.clean(query.tab)
    natural = assets.Query.clean(query.tab, sort=query.sort).direction
    params = {
        "tab": query.tab,
        "q": query.q,
        "sort": query.sort if query.sort != default.sort else "",
        "dir": query.direction if query.direction != natural else "",
        "state": query.state if query.state != "present" else "",
        "size": size if size != assets.PAGE_SIZE else "",
        "page": page if page > 1 else "",
    }
    return f"/targets/{target_id}{path}?{urlencode({k: v for k, v in params.items() if v})}"


def _table_context(target: Target, page: assets.Page, counts: dict[str, int]) -> dict[str, Any]:
    query, size, tid = page.query, page.size, target.id

    def sort_link(key: str) -> str:
        if key == query.sort:
            flipped = "asc" if query.direction == "desc" else "desc"
            return _href(tid, assets.Query(query.tab, query.q, key, flipped, query.state), 1, size)
        return _href(tid, assets.Query.clean(query.tab, query.q, key, None, query.state), 1, size)

    def page_link(number: int) -> str:
        return _href(tid, query, number, size)

    def tab_link(tab: str) -> str:
        return _href(tid, assets.Query.clean(tab), 1, size)

    export = _href(tid, query, path="/export.csv")
    return {
        "target": targets.to_dict(target),
        "tab": query.tab,
        "query": query,
        "pager": page,
        "rows": page.rows,
        "counts": counts,
        "tabs": TAB_LABELS,
        "headers": HEADERS[query.tab],
        "observed": query.tab in ("subdomains", "ports", "services", "js"),
        "page_sizes": PAGE_SIZES,
        "sort_link": sort_link,
        "page_link": page_link,
        "tab_link": tab_link,
        "export_csv": export,
        "export_json": export.replace("/export.csv", "/export.json", 1),
        "canonical": page_link(page.page),
    }


def _tab(tab: str) -> str:
    if tab not in assets.TABS:
        raise HTTPException(404, f"no tab {tab!r}; tabs are {', '.join(assets.TABS)}")
    return tab


@router.get("/targets/{target_id}", response_class=HTMLResponse)
def target_page(
    request: Request,
    target_id: RowId,
    tab: str = Query(default="subdomains", max_length=20),
    q: str = Query(default="", max_length=assets.MAX_FILTER),
    sort: str = Query(default="", max_length=20),
    dir: str = Query(default="", max_length=4),
    state: str = Query(default="present", max_length=10),
    page: int = Query(default=1, ge=1, le=1_000_000),
    size: int = Query(default=assets.PAGE_SIZE, ge=1, le=assets.MAX_PAGE_SIZE),
) -> HTMLResponse:
    target = _target(target_id)
    found = assets.page(target.id, _tab(tab), q, sort, dir, page, size, state)
    context = _table_context(target, found, assets.counts(target.id))
    headers = {"Vary": "HX-Request, HX-Target"}
    # The table region alone for htmx; the whole page for a link, a reload, or htmx restoring history.
    if request.headers.get("HX-Target") == "target-table" and not request.headers.get("HX-History-Restore-Request"):
        headers["HX-Push-Url"] = context["canonical"]
        return templates.TemplateResponse(request, "_target_table.html", context, headers=headers)
    context |= {
        "health": health_summary(),
        "can_edit": _can_edit(request),
        "modules": modules(),
        "values": _values_of(target),
        "errors": {},
        "edit": target,
    }
    return templates.TemplateResponse(request, "target.html", context, headers=headers)


# --- export --------------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell; one a spreadsheet would read as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    text = " ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def _csv(rows: Iterator[dict[str, Any]], columns: tuple[str, ...]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([_cell(row.get(c)) for c in columns])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _json(rows: Iterator[dict[str, Any]], target: Target, query: assets.Query) -> Iterator[str]:
    head = {"target_id": target.id, "target": target.name, "tab": query.tab, "q": query.q, "sort": query.sort}
    yield json.dumps(head | {"dir": query.direction, "state": query.state})[:-1] + ', "rows": [\n'
    for n, row in enumerate(rows):
        yield ("" if n == 0 else ",\n") + json.dumps(row)
    yield "\n]}\n"


def _filename(target: Target, tab: str, ext: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", target.name).strip("-") or f"target-{target.id}"
    return f"{safe}-{tab}.{ext}"


@router.get("/targets/{target_id}/export.{ext}")
def export(
    target_id: RowId,
    ext: str,
    tab: str = Query(default="subdomains", max_length=20),
    q: str = Query(default="", max_length=assets.MAX_FILTER),
    sort: str = Query(default="", max_length=20),
    dir: str = Query(default="", max_length=4),
    state: str = Query(default="present", max_length=10),
) -> StreamingResponse:
    if ext not in ("csv", "json"):
        raise HTTPException(404, "exports are .csv or .json")
    target = _target(target_id)
    query = assets.Query.clean(_tab(tab), q, sort, dir, state)
    rows = assets.export(target.id, query.tab, query.q, query.sort, query.direction, query.state)
    disposition = {"Content-Disposition": f'attachment; filename="{_filename(target, query.tab, ext)}"'}
    if ext == "csv":
        return StreamingResponse(
            _csv(rows, assets.columns(query.tab)), media_type="text/csv; charset=utf-8", headers=disposition
        )
    return StreamingResponse(_json(rows, target, query), media_type="application/json", headers=disposition)
