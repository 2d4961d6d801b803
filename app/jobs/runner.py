"""Runs one job: claim the row, call the registered function, record the outcome.

The same code runs in a Celery worker, in the web process's fallback pool, and
eagerly in a caller's process; only the `mode` it reports differs. A job that asks to be
tried again (a TransientError) is handed to `resend` when the caller gives one (a Celery
worker publishes it again, with a delay); otherwise the runner waits and runs it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.errors import JobCancelled, TransientError, UnknownTask
from app.jobs import diskspace, registry, store
from app.jobs.context import JobContext, activate, deactivate
from app.models import Job, JobStatus
from app.settings import get_settings

Resend = Callable[[Job, float], None]  # publish a job again, to run after a delay (seconds)

log = logging.getLogger(__name__)


class _Heartbeat:
    """Touches the job row periodically so others can tell the runner is alive."""

    def __init__(self, job_id: str, runner: str, interval: float) -> None:
        self.job_id, self.runner, self.interval = job_id, runner, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                store.heartbeat(self.job_id, self.runner)
            except Exception as exc:  # a database hiccup must not kill the job
                log.warning("heartbeat for job %s failed: %s", self.job_id, exc)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _is_soft_time_limit(exc: BaseException) -> bool:
    return type(exc).__name__ == "SoftTimeLimitExceeded"


def _finish(job_id: str, status: JobStatus, **values: Any) -> bool:
    """store.finish, even on a full disk: recording the outcome needs a little space, so when the write fails for
    want of it the reserve (app/jobs/diskspace.py) is given up and the write tried once more. Without this the job
    would stay `running`, with no reason, until someone freed space (only then would the reaper settle it)."""
    try:
        return store.finish(job_id, status, **values)
    except Exception as exc:
        if not diskspace.is_full(exc) or not diskspace.release_reserve():
            raise
        return store.finish(job_id, status, **values)


def run_job(
    job_id: str, *, mode: str, worker: str | None = None, reason: str | None = None, resend: Resend | None = None
) -> str | None:
    """Run the job if it is ours to run. Returns its final status ("queued" when it was sent to be
    retried later), or None when skipped."""
    settings = get_settings()
    runner = store.runner_id()
    job = store.claim(job_id, runner, settings.job_max_attempts, settings.job_stale_seconds)
    if job is None:
        log.info("job %s skipped: already taken, finished or cancelled", job_id)
        return None
    try:
        spec = registry.get(job.name)
    except UnknownTask as exc:
        _finish(job_id, JobStatus.failed, error=str(exc), runner=runner)
        return JobStatus.failed.value

    limit = spec.time_limit or settings.job_soft_time_limit
    deadline = None if mode == "celery" else time.monotonic() + limit
    context = JobContext(job_id=job_id, runner=runner, mode=mode, worker=worker, reason=reason, soft_deadline=deadline)
    token = activate(context)
    context.log(_start_line(job, mode, worker, reason))
    try:
        with _Heartbeat(job_id, runner, settings.job_heartbeat_seconds):
            result = spec.func(**job.kwargs)
        final = JobStatus.succeeded
        # A job's last progress message ("12 files scanned, 3 secrets found") says more than "done".
        _finish(job_id, final, result=result, message=context.last_message, runner=runner)
    except TransientError as exc:
        if job.retries >= spec.retries:
            final = JobStatus.failed
            error = f"{exc} (gave up after {job.retries} retries)" if spec.retries else str(exc)
            _finish(job_id, final, error=f"transient error: {error}", runner=runner)
        else:
            deactivate(token)
            token = None
            return _retry(job, spec, runner, exc, mode=mode, worker=worker, reason=reason, resend=resend)
    except JobCancelled:
        final = JobStatus.cancelled
        _finish(job_id, final, message="cancelled on request", runner=runner)
    except TimeoutError as exc:
        final = JobStatus.failed
        _finish(job_id, final, error=f"time limit exceeded: {exc}", runner=runner)
    except Exception as exc:
        final = JobStatus.failed
        if _is_soft_time_limit(exc):
            error = f"time limit exceeded ({settings.job_soft_time_limit} s)"
        elif diskspace.is_full(exc):  # a reason people understand, not SQLAlchemy's text
            error = diskspace.message()
            log.error("job %s (%s) failed: %s", job_id, job.name, exc)
        else:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s (%s) failed", job_id, job.name)
        _finish(job_id, final, error=error, runner=runner)
    finally:
        if token is not None:
            deactivate(token)
    return final.value


def _start_line(job: Job, mode: str, worker: str | None, reason: str | None) -> str:
    """ "Started on Celery worker w1@host", "Restarted (attempt 2) in a fallback process: Redis ...", ..."""
    if job.attempts > 1:
        what = f"Restarted (attempt {job.attempts})"
    elif job.retries:
        what = f"Started again (retry {job.retries})"
    elif job.runs > 1:
        what = f"Started again (run {job.runs})"
    else:
        what = "Started"
    if mode == "celery":
        where = f"on Celery worker {worker}" if worker else "on a Celery worker"
    else:
        where = f"in fallback mode ({reason})" if reason else "in this process"
    return f"{what} {where}"


def _retry(
    job: Job,
    spec: registry.TaskSpec,
    runner: str,
    exc: Exception,
    *,
    mode: str,
    worker: str | None,
    reason: str | None,
    resend: Resend | None,
) -> str | None:
    """Queue the job again after a transient error: `resend` (Celery) delivers it `delay` seconds later;
    in the web process or a shell the runner waits, then runs it again (holding its slot for the delay)."""
    delay = spec.retry_backoff * 2**job.retries
    again = store.retry_later(job.id, runner, f"retry {job.retries + 1} of {spec.retries} in {delay:g} s: {exc}")
    if again is None:
        return None  # cancelled or taken over meanwhile
    log.info("job %s (%s): transient error, retry in %g s: %s", job.id, job.name, delay, exc)
    if resend is not None:
        resend(again, delay)
        return JobStatus.queued.value
    time.sleep(delay)
    return run_job(job.id, mode=mode, worker=worker, reason=reason)
