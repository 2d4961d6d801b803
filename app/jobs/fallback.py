"""Fallback execution inside the web process, for when no Celery worker can take a job.

Jobs run in a small pool of separate processes (at lower CPU priority), so a
CPU-heavy scan never holds the web server's event loop or its GIL. The processes are
started fresh (spawn), so they import the job catalogue that the web app names when it
installs the pool: the machinery itself never imports the catalogue.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from app.db import dispose_engines
from app.jobs.runner import run_job
from app.settings import get_settings

log = logging.getLogger(__name__)


def _init_child(catalogue: tuple[str, ...]) -> None:
    settings = get_settings()
    with contextlib.suppress(OSError):
        os.nice(settings.worker_nice)
    dispose_engines()
    for module in catalogue:  # e.g. "app.tasks": importing it registers every job
        importlib.import_module(module)


def _run_in_child(job_id: str, reason: str | None) -> str | None:
    return run_job(job_id, mode="eager", reason=reason)


class FallbackPool:
    def __init__(
        self, processes: int, loop: asyncio.AbstractEventLoop | None = None, catalogue: tuple[str, ...] = ()
    ) -> None:
        self.processes = processes
        self.catalogue = catalogue
        self.loop = loop
        self._pool: ProcessPoolExecutor | None = None
        self._pending: set[Any] = set()  # keeps scheduled runs referenced until done

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_child,
                initargs=(self.catalogue,),
            )
        return self._pool

    async def run(self, job_id: str, reason: str | None = None) -> None:
        """Run a job in the pool; awaited by a BackgroundTask or scheduled on the loop."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor(), _run_in_child, job_id, reason)
        except BrokenProcessPool:
            # A child died (e.g. killed by the OOM killer). Start a fresh pool; the reaper settles the job.
            log.error("fallback pool broke while running job %s; restarting the pool", job_id)
            self._pool = None
        except Exception:
            log.exception("fallback job %s crashed", job_id)

    def submit_nowait(self, job_id: str, reason: str | None = None) -> None:
        """Schedule a job from any thread (start-up recovery, the reaper) without waiting for it."""
        if self.loop is None:
            raise RuntimeError("the fallback pool has no event loop")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            task = self.loop.create_task(self.run(job_id, reason))
        else:
            task = asyncio.run_coroutine_threadsafe(self.run(job_id, reason), self.loop)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


_active: FallbackPool | None = None


def install(
    loop: asyncio.AbstractEventLoop, catalogue: tuple[str, ...] = (), processes: int | None = None
) -> FallbackPool:
    """Called by the web app at start-up: from then on fallback jobs go to this pool, whose processes
    import the `catalogue` modules (the jobs they may run) first."""
    global _active
    _active = FallbackPool(processes or get_settings().fallback_processes, loop, catalogue)
    return _active


def uninstall() -> None:
    global _active
    if _active is not None:
        _active.shutdown()
    _active = None


def active() -> FallbackPool | None:
    return _active
