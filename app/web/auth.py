"""Who is asking and may they: the signed-in user (session cookie) or an API token (bearer).

One middleware authenticates every request. Everything needs a user or a token except /healthz,
the static files, the sign-in and first-run pages, and /metrics while METRICS_PUBLIC is true.
State-changing requests from a browser session must carry the session's CSRF token (header
`X-CSRF-Token`, which htmx sends, or a `csrf_token` form field); bearer requests cannot be forged
by another site, so they need none. Viewers (users and tokens) may only read.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from app.accounts import sessions, tokens
from app.settings import get_settings

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/healthz", "/login", "/setup", "/favicon.ico"})
OPEN_PREFIXES = ("/static/",)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    via: str  # "session" | "token"
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def current_user(request: Request) -> Principal | None:
    return getattr(request.state, "user", None)


def require_admin(request: Request) -> Principal:
    """For actions only an admin may take (revealing secrets, settings, triage); 403 for anyone else."""
    user = current_user(request)
    if user is None:
        raise HTTPException(401, "sign in first")
    if not user.is_admin:
        raise HTTPException(403, "only an admin can do this")
    return user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def is_loopback(request: Request) -> bool:
    try:
        return ipaddress.ip_address(client_ip(request)).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _resolve(request: Request) -> tuple[Principal | None, str | None, bool]:
    """(principal, CSRF token of the session, whether a bearer token was offered)."""
    token = _bearer(request)
    if token is not None:
        found = tokens.lookup(token)
        return (Principal(found[0], found[1], "token") if found else None), None, True
    signed = sessions.lookup(request.cookies.get(sessions.COOKIE))
    if signed is None:
        return None, None, False
    account = signed.account
    return Principal(account.username, account.role, "session", account.id), signed.csrf, False


def _same_origin(request: Request) -> bool:
    """A browser says where a POST comes from; one from another site is refused before its CSRF token
    is even looked at. Clients that send neither header (scripts, curl) pass this check."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if origin == "null" or not parts.hostname:
        return False

    def default_port(scheme: str) -> int:
        return 443 if scheme == "https" else 80

    return (parts.hostname, parts.port or default_port(parts.scheme)) == (
        request.url.hostname,
        request.url.port or default_port(request.url.scheme),
    )


async def _csrf_ok(request: Request, expected: str | None) -> bool:
    if not expected:
        return False
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        # Reading body() first makes Starlette keep the bytes and replay them to the route.
        await request.body()
        offered = str((await request.form()).get(CSRF_FIELD) or "")
    return bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _unauthenticated(request: Request, bearer_offered: bool) -> Response:
    if request.headers.get("HX-Request") == "true":
        # htmx follows HX-Redirect whatever the status: the page goes to the sign-in form.
        return PlainTextResponse("sign in first", status_code=401, headers={"HX-Redirect": "/login"})
    if _wants_html(request) and request.method == "GET" and not bearer_offered:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    detail = (
        "invalid or revoked API token"
        if bearer_offered
        else "authentication required: sign in, or send 'Authorization: Bearer <token>'"
    )
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=403)


async def authenticate(request: Request, call_next) -> Response:
    path = request.url.path
    if request.method in ("GET", "HEAD") and (path == "/healthz" or path.startswith(OPEN_PREFIXES)):
        # Liveness probes and static files need no user: no session lookup on those hot paths.
        request.state.user = request.state.csrf = None
        return await call_next(request)
    principal, csrf, bearer_offered = await run_in_threadpool(_resolve, request)
    request.state.user = principal
    request.state.csrf = csrf
    if request.method in UNSAFE and not _same_origin(request):
        return _forbidden("cross-site request refused")
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return await call_next(request)
    if principal is None:
        if path == "/metrics" and get_settings().metrics_public and not bearer_offered:
            return await call_next(request)
        return _unauthenticated(request, bearer_offered)
    if request.method in UNSAFE:
        if principal.via == "session" and not await _csrf_ok(request, csrf):
            return _forbidden("missing or wrong CSRF token; reload the page and try again")
        if not principal.is_admin and path != "/logout":
            return _forbidden("viewers can look but not change anything; ask an admin")
    return await call_next(request)
