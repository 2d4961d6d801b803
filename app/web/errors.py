"""How the web app answers when something goes wrong: a page for a person who followed a link, JSON with a
`detail` in words for everything else (the API, htmx, scripts); never a stack trace. The handlers that
use these are in app/main.py; the OpenAPI document describes the error body they write.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.web.templating import templates


def json_error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def page_or_json(request: Request, status: int, detail: str) -> Response:
    """A person following a link gets a page that says what went wrong; everything else gets JSON."""
    wants_page = (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and request.headers.get("HX-Request") != "true"
        and "text/html" in request.headers.get("accept", "")
    )
    if not wants_page:
        return json_error(status, detail)
    return templates.TemplateResponse(request, "error.html", {"status": status, "detail": detail}, status_code=status)


def describe_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors:
        if err.get("type") == "json_invalid":
            parts.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


# What every 422 (and every other error) answers, as app/main.py's handlers write it. The OpenAPI schema
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


def document_errors(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh and "HTTPValidationError" in schema.get("components", {}).get("schemas", {}):
            schema["components"]["schemas"]["HTTPValidationError"] = ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
