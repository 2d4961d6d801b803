"""The web app's entry point (`uvicorn app.main:app`, ./start_web.sh): the FastAPI app with its routers and
error handlers, and what the web process does besides answering: start-up recovery, the fallback pool
for jobs no worker takes, the reaper, and the scheduler tick while no worker runs beat."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, tasks
from app.accounts import sessions, users
from app.db import ensure_migrated
from app.errors import AssetMonError
from app.jobs import broker, diskspace, fallback, recovery
from app.monitor import scheduler
from app.secrets import sealing
from app.settings import PROJECT_ROOT, Settings, get_settings
from app.web import ROUTERS, auth, errors
from app.web.headers import security_headers

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
    while True:
        await asyncio.sleep(interval)
        try:
            if not broker.status().serves("default"):
                await run_in_threadpool(scheduler.tick)
        except Exception:
            log.exception("scheduler tick failed")


def _first_run(settings: Settings) -> None:
    users.ensure_admin_from_settings()
    sessions.purge_expired()
    if not users.any_users():
        code = users.setup_code()
        host = "localhost" if settings.host in ("0.0.0.0", "::", "127.0.0.1") else settings.host
        log.warning(
            "No accounts yet: open http://%s:%s/setup to create the admin (from another machine it asks for "
            "the setup code %s, also in %s), or set ADMIN_PASSWORD, or run `assetmon users create`.",
            host,
            settings.port,
            code,
            users.setup_code_path(),
        )


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    await run_in_threadpool(ensure_migrated)
    await run_in_threadpool(diskspace.ensure_reserve)  # room to record a failure should the disk fill up
    await run_in_threadpool(_first_run, settings)
    await run_in_threadpool(sealing.seal_stored)  # values an older version stored in clear
    fallback.install(asyncio.get_running_loop(), catalogue=(tasks.__name__,))
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


def _install_error_handlers(app: FastAPI) -> None:
    """One handler for all of AssetMon's own errors, and one each for FastAPI's validation errors, HTTP
    exceptions, and anything unexpected: a page for people following a link, JSON for everything else."""
    errors.document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return errors.json_error(422, f"invalid request: {errors.describe_validation(exc.errors())}", errors=found)

    @app.exception_handler(AssetMonError)
    async def _ours(request: Request, exc: AssetMonError) -> Response:
        # Every error of ours carries the HTTP status that says what went wrong (app/errors.py).
        return errors.page_or_json(request, exc.status_code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return errors.page_or_json(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if diskspace.is_full(exc):  # 507 Insufficient Storage, and what to do about it
            log.error("%s %s: %s", request.method, request.url.path, exc)
            return errors.page_or_json(request, 507, diskspace.message().replace("run it again", "try again"))
        if isinstance(exc, OperationalError):  # the database is down or busy: temporary, and not our bug
            log.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
            return errors.page_or_json(request, 503, "the database is unavailable right now; try again in a moment")
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return errors.page_or_json(request, 500, "internal error; the server log has the details")


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")


def create_app() -> FastAPI:
    _configure_logging()
    app = FastAPI(title="AssetMon", version=__version__, lifespan=lifespan)
    _install_error_handlers(app)
    # Added first, so it runs inside security_headers: refusals get the headers too.
    app.middleware("http")(auth.authenticate)
    app.middleware("http")(security_headers)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")
    return app


app = create_app()
