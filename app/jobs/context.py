"""What a running job knows about itself: progress reporting, cancellation, how it runs.

Domain functions call `current_job()`; outside a job they get a context that does
nothing, so the same function also works when called directly (tests, the CLI).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from app.errors import JobCancelled, JobLogError
from app.jobs import log as joblog
from app.jobs import store

logger = logging.getLogger(__name__)


@dataclass
class JobContext:
    job_id: str | None = None
    runner: str | None = None
    mode: str = "direct"  # "celery" in a worker, "eager" in-process, "direct" outside the job system
    worker: str | None = None  # Celery node name when run by a worker
    reason: str | None = None  # why the job runs eagerly, when it does
    soft_deadline: float | None = None  # monotonic time after which the job must stop
    last_message: str | None = None
    _last_report: float = field(default=0.0, repr=False)
    _cancelled: bool = field(default=False, repr=False)

    def progress(self, percent: int | None = None, message: str | None = None, *, force: bool = False) -> None:
        """Report progress; also a checkpoint where a cancel or a time limit stops the job."""
        if self.job_id is None:
            return
        if message:
            self.last_message = message
        now = time.monotonic()
        # Throttle writes: a tight loop reporting progress must not hammer the database.
        if force or percent in (0, 100) or now - self._last_report >= 0.25:
            self._last_report = now
            self._cancelled = store.report_progress(self.job_id, self.runner or "", percent, message)
        self.checkpoint()

    def log(self, message: str, level: str = "info") -> None:
        """Add a line to the job's log (stages, totals, warnings: never one per item). Outside a job,
        and when the database hiccups, it does nothing: a log line never fails the job."""
        if self.job_id is None:
            return
        try:
            joblog.append(self.job_id, message, level)
        except JobLogError:
            raise
        except Exception as exc:
            logger.warning("log line for job %s not written: %s", self.job_id, exc)

    def checkpoint(self) -> None:
        if self._cancelled:
            raise JobCancelled("cancelled on request")
        if self.soft_deadline is not None and time.monotonic() > self.soft_deadline:
            raise TimeoutError("job time limit exceeded")


_current: ContextVar[JobContext | None] = ContextVar("assetmon_job", default=None)


def current_job() -> JobContext:
    return _current.get() or JobContext()


def activate(context: JobContext) -> Token[JobContext | None]:
    return _current.set(context)


def deactivate(token: Token[JobContext | None]) -> None:
    _current.reset(token)
