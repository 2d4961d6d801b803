"""Security headers on every answer, and a strict Content-Security-Policy on our pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

# No inline scripts or styles anywhere in our pages; htmx runs with eval off. The API docs (Swagger UI,
# ReDoc) load their own scripts and are left without a CSP.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_NO_CSP = ("/docs", "/redoc", "/openapi.json")


async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.url.path.startswith(_NO_CSP):
        response.headers.setdefault("Content-Security-Policy", CSP)
    return response
