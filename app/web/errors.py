"""What the web app answers when something goes wrong: a page for a person who followed a link, JSON with a
`detail` in words for everything else (the API, htmx, scripts); never a stack trace.

One handler for all of AssetMon's own errors (app/errors.py: each carries its HTTP status), and one each
for FastAPI's validation errors, HTTP exceptions, and anything unexpected.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AssetMonError
from app.jobs import diskspace
from app.web.templating import templates

log = logging.getLogger("assetmon")


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _page_or_json(request: Request, status: int, detail: str) -> Response:
    """A person following a link gets a page that says what went wrong; everything else gets JSON."""
    wants_page = (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and request.headers.get("HX-Request") != "true"
        and "text/html" in request.headers.get("accept", "")
    )
    if not wants_page:
        return _error(status, detail)
    return templates.TemplateResponse(request, "error.html", {"status": status, "detail": detail}, status_code=status)


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    """The handlers, and the error schema they answer with in the OpenAPI document."""
    _document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(422, f"invalid request: {_describe(exc.errors())}", errors=errors)

    @app.exception_handler(AssetMonError)
    async def _ours(request: Request, exc: AssetMonError) -> Response:
        # Every error of ours carries the HTTP status that says what went wrong (app/errors.py).
        return _page_or_json(request, exc.status_code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _page_or_json(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if diskspace.is_full(exc):  # 507 Insufficient Storage, and what to do about it
            log.error("%s %s: %s", request.method, request.url.path, exc)
            return _page_or_json(request, 507, diskspace.message().replace("run it again", "try again"))
        if isinstance(exc, OperationalError):  # the database is down or busy: temporary, and not our bug
            log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
            return _page_or_json(request, 503, "the database is unavailable right now; try again in a moment")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _page_or_json(request, 500, "internal error; the server log has the details")


# What every 422 (and every other error) answers, as the handlers above write it. The OpenAPI schema
# says so instead of FastAPI's default (a list of pydantic errors under "detail"), so clients can rely on it.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, in words"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}


def _document_errors(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh and "HTTPValidationError" in schema.get("components", {}).get("schemas", {}):
            schema["components"]["schemas"]["HTTPValidationError"] = ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
