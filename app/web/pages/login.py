"""Sign-in, sign-out and the first-run page that creates the first admin."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.accounts import audit, sessions
from app.accounts import users as accounts
from app.accounts.identity import Account
from app.errors import AccountError, TooManyAttempts
from app.models import Role
from app.settings import get_settings
from app.web.auth import client_ip, current_user, is_loopback
from app.web.templating import templates

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: "//evil.example" or "/\\evil" would leave it.
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _signed_in(request: Request, account: Account, target: str) -> Response:
    token = sessions.create(account, client_ip(request), request.headers.get("user-agent", ""))
    response = RedirectResponse(_safe_next(target), status_code=303)
    settings = get_settings()
    secure = settings.session_cookie_secure == "true" or (
        settings.session_cookie_secure == "auto" and request.url.scheme == "https"
    )
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    if not accounts.any_users():
        return RedirectResponse("/setup", status_code=303)
    if current_user(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return templates.TemplateResponse(request, "login.html", {"next": _safe_next(next), "username": ""})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: str = Form(default="", max_length=200),
    password: str = Form(default="", max_length=2000),
    next: str = Form(default="/", max_length=2000),
) -> Response:
    ip = client_ip(request)
    context = {"next": _safe_next(next), "username": username[:64]}
    try:
        account = await run_in_threadpool(accounts.authenticate, username, password, ip)
    except TooManyAttempts as exc:
        context["error"] = str(exc)
        headers = {"Retry-After": str(exc.retry_after)}
        return templates.TemplateResponse(request, "login.html", context, status_code=429, headers=headers)
    if account is None:
        await run_in_threadpool(audit.record, username[:64] or "?", "auth.login_failed", "", ip)
        context["error"] = "Wrong user name or password."
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    await run_in_threadpool(audit.record, account.username, "auth.login", "", ip)
    return _signed_in(request, account, next)


@router.post("/logout")
def logout(request: Request) -> Response:
    sessions.revoke(request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


def _setup_context(request: Request, **extra) -> dict:
    return {"username": get_settings().admin_user, "needs_code": not is_loopback(request)} | extra


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request) -> Response:
    if accounts.any_users():
        return RedirectResponse("/login", status_code=303)
    accounts.setup_code()  # make sure the code exists for a browser on another machine
    return templates.TemplateResponse(request, "setup.html", _setup_context(request))


@router.post("/setup", response_class=HTMLResponse)
async def setup(
    request: Request,
    username: str = Form(default="", max_length=200),
    password: str = Form(default="", max_length=2000),
    password2: str | None = Form(default=None, max_length=2000),
    code: str = Form(default="", max_length=100),
) -> Response:
    """Create the first admin. From another machine this needs the setup code the server printed, so
    whoever reaches a fresh install over the network first cannot take it over."""
    context = _setup_context(request, username=username[:64])
    if await run_in_threadpool(accounts.any_users):
        return RedirectResponse("/login", status_code=303)
    if context["needs_code"] and code.strip() != await run_in_threadpool(accounts.setup_code):
        context["error"] = "Wrong setup code: it is in the web server's log and in DATA_DIR/setup-code."
        return templates.TemplateResponse(request, "setup.html", context, status_code=403)
    if password2 is not None and password2 != password:
        context["error"] = "The two passwords differ."
        return templates.TemplateResponse(request, "setup.html", context, status_code=422)
    try:
        account = await run_in_threadpool(
            lambda: accounts.create_user(username, password, Role.admin.value, only_if_none=True)
        )
    except accounts.UserExists:
        return RedirectResponse("/login", status_code=303)
    except AccountError as exc:
        context["error"] = str(exc).capitalize()
        return templates.TemplateResponse(request, "setup.html", context, status_code=422)
    await run_in_threadpool(accounts.forget_setup_code)
    await run_in_threadpool(audit.record, account.username, "auth.setup", account.username, client_ip(request))
    return _signed_in(request, account, "/")
