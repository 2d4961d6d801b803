"""FastAPI application factory: routers, error handling, start-up recovery and background upkeep."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, accounts, broker, diskspace, fallback, recovery, sessions
from app.accounts import AccountError
from app.db import DatabaseError, ensure_migrated
from app.jobs import JobError
from app.notify import ChannelError
from app.registry import InvalidArguments, UnknownTask
from app.scans import ScanError
from app.schedules import ScheduleError
from app.secrets.store import BadStatusFilter, FindingNotFound
from app.secrets.triage import TriageError
from app.settings import PROJECT_ROOT, get_settings
from app.targets import TargetError
from app.web import auth, dashboard, finding_pages, login, metrics, pages, settings_pages, target_pages
from app.web.api import accounts as accounts_api
from app.web.api import health, jobs, notifications, scans, schedules, secrets

log = logging.getLogger("assetmon")


async def _reaper_loop(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(diskspace.ensure_reserve)  # back once there is room again
            counts = await run_in_threadpool(recovery.reap)
            if any(counts.values()):
                log.warning("reaper: %s", counts)
        except Exception:
            log.exception("reaper pass failed")


async def _scheduler_loop(interval: float) -> None:
    """In fallback mode the web process fires due schedules and notifications; with a Celery worker
    (which runs beat) up, beat does. Both at once is safe: due runs are claimed in the database."""
    from app.schedules import tick

    while True:
        await asyncio.sleep(interval)
        try:
            if not broker.status().serves("default"):
                await run_in_threadpool(tick)
        except Exception:
            log.exception("scheduler tick failed")


def _first_run(settings) -> None:
    accounts.ensure_admin_from_settings()
    sessions.purge_expired()
    if not accounts.any_users():
        code = accounts.setup_code()
        host = "localhost" if settings.host in ("0.0.0.0", "::", "127.0.0.1") else settings.host
        log.warning(
            "No accounts yet: open http://%s:%s/setup to create the admin (from another machine it asks for "
            "the setup code %s, also in %s), or set ADMIN_PASSWORD, or run `assetmon users create`.",
            host,
            settings.port,
            code,
            accounts.setup_code_path(),
        )


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    await run_in_threadpool(ensure_migrated)
    await run_in_threadpool(diskspace.ensure_reserve)  # room to record a failure should the disk fill up
    await run_in_threadpool(_first_run, settings)
    fallback.install(asyncio.get_running_loop())
    # A first probe before serving, so the very first request already reports the right mode.
    await run_in_threadpool(broker.status, 0)
    monitor = broker.StatusMonitor()
    monitor.start()
    try:
        counts = await run_in_threadpool(recovery.recover_at_startup)
        if any(counts.values()):
            log.warning("start-up recovery: %s", counts)
    except Exception:
        log.exception("start-up recovery failed")
    reaper = asyncio.create_task(_reaper_loop(settings.reaper_interval_seconds))
    scheduler = asyncio.create_task(_scheduler_loop(settings.scheduler_tick_seconds))
    try:
        yield
    finally:
        for task in (reaper, scheduler):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        monitor.stop()
        fallback.uninstall()


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
    from app.web.pages import templates

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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return _error(422, f"invalid request: {_describe(exc.errors())}", errors=errors)

    @app.exception_handler(UnknownTask)
    async def _unknown(_: Request, exc: UnknownTask) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(InvalidArguments)
    async def _invalid(_: Request, exc: InvalidArguments) -> JSONResponse:
        return _error(422, str(exc))

    async def _domain(request: Request, exc: Exception) -> Response:
        # Errors of our domain modules carry the HTTP status that says what went wrong.
        return _page_or_json(request, exc.status_code, str(exc))

    domain_errors = (AccountError, JobError, ScanError, ScheduleError, TargetError, ChannelError)
    domain_errors += (FindingNotFound, TriageError, BadStatusFilter)
    for domain_error in domain_errors:
        app.add_exception_handler(domain_error, _domain)

    @app.exception_handler(DatabaseError)
    async def _db(_: Request, exc: DatabaseError) -> JSONResponse:
        return _error(503, str(exc))

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


# What every 422 (and every other error) answers, as install_error_handlers writes it. The OpenAPI schema
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


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")


# No inline scripts or styles anywhere in our pages; htmx runs with eval off. The API docs (Swagger UI,
# ReDoc) load their own scripts and are left without a CSP.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_NO_CSP = ("/docs", "/redoc", "/openapi.json")


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.url.path.startswith(_NO_CSP):
        response.headers.setdefault("Content-Security-Policy", CSP)
    return response


def create_app() -> FastAPI:
    _configure_logging()
    app = FastAPI(title="AssetMon", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    _document_errors(app)
    # Added first, so it runs inside security_headers: refusals get the headers too.
    app.middleware("http")(auth.authenticate)
    app.middleware("http")(security_headers)
    app.include_router(login.router)
    app.include_router(health.router)
    app.include_router(accounts_api.router)
    app.include_router(schedules.router)  # before jobs: /jobs/scheduled is not a job id
    app.include_router(jobs.router)
    app.include_router(secrets.router)
    app.include_router(scans.router)
    app.include_router(notifications.router)
    app.include_router(dashboard.router)
    app.include_router(target_pages.router)
    app.include_router(finding_pages.router)
    app.include_router(settings_pages.router)
    app.include_router(pages.router)
    app.include_router(metrics.router)
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    return app


app = create_app()
