"""One door for jobs: Celery when a worker can take them, the web process's fallback pool when not.

Every job is a row first; then it is published to Celery or handed to the
fallback pool (FastAPI BackgroundTasks in a request), or, outside the web
process, run eagerly in the caller's process. Publishing failures fall back
instead of erroring, so a job is never lost between the two.
"""

from __future__ import annotations

import logging
from typing import Any

from app.db import ensure_migrated
from app.errors import InvalidArguments
from app.jobs import broker, fallback, registry, store
from app.jobs.celery_app import celery_app
from app.jobs.runner import run_job
from app.models import Backend, Job, JobStatus
from app.settings import QUEUES

log = logging.getLogger(__name__)


def celery_task_name(name: str) -> str:
    return f"assetmon.{name}"


def celery_task_id(job: Job) -> str:
    # One Celery id per run of a job: a revoked id (a cancel while queued) must not
    # swallow the message of a later requeue of the same job.
    return f"{job.id}.{job.runs}"


def celery_task_ids(job_id: str, runs: int) -> list[str]:
    """Every Celery task id a job has had: one per run."""
    return [f"{job_id}.{run}" for run in range(1, max(runs, 1) + 1)]


def submit(name: str, kwargs: Any = None, *, background: Any = None, queue: str | None = None) -> Job:
    """Validate, record and dispatch a job. Raises UnknownTask / InvalidArguments before writing anything.
    `queue` sends it to another Celery queue than its task's (e.g. a dedicated worker pool)."""
    spec = registry.get(name)
    clean = spec.validate(kwargs)
    if queue is not None and queue not in QUEUES:
        raise InvalidArguments(name, f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    queue = queue or spec.queue
    ensure_migrated()
    status = broker.status()
    backend = Backend.celery if status.serves(queue) else _fallback_backend()
    job = store.create_job(spec.name, clean, queue, backend.value)
    return send(job, background=background, status=status)


def send(
    job: Job, *, background: Any = None, status: broker.BrokerStatus | None = None, countdown: float | None = None
) -> Job:
    """Publish an existing queued job to wherever it can run now."""
    status = status or broker.status()
    if status.serves(job.queue):
        try:
            if job.backend != Backend.celery:
                store.set_backend(job.id, Backend.celery.value, "queued for a Celery worker")
            queued = store.get_job(job.id)  # as it was sent: a worker may take it the moment it is published
            _publish(queued, countdown)
            return queued
        except Exception as exc:
            broker.invalidate()
            reason = f"publishing to Celery failed ({exc}); jobs run inside the web process"
            log.warning("job %s: %s", job.id, reason)
    else:
        reason = status.fallback_reason(job.queue)
    return _run_fallback(job, reason, background)


def _publish(job: Job, countdown: float | None = None) -> None:
    celery_app.send_task(
        celery_task_name(job.name),
        args=[job.id],
        task_id=celery_task_id(job),
        queue=job.queue,
        retry=False,
        countdown=countdown,
    )


def _fallback_backend() -> Backend:
    return Backend.background if fallback.active() is not None else Backend.eager


def _run_fallback(job: Job, reason: str, background: Any) -> Job:
    pool = fallback.active()
    if pool is not None:
        store.set_backend(job.id, Backend.background.value, "queued in the web process (fallback mode)")
        if background is not None:
            background.add_task(pool.run, job.id, reason)
        else:
            pool.submit_nowait(job.id, reason)
        return store.get_job(job.id)
    # No web process around (a shell, the CLI): run it here and now, like Celery's eager mode.
    store.set_backend(job.id, Backend.eager.value, "running in the calling process")
    run_job(job.id, mode="eager", reason=reason)
    return store.get_job(job.id)


def requeue(job_id: str, *, background: Any = None) -> Job:
    job = store.reset_for_requeue(job_id)
    return send(job, background=background)


def cancel(job_id: str, terminate: bool = False) -> Job:
    """Cancel a queued job at once; ask a running one to stop at its next checkpoint. With `terminate`,
    a running Celery task is also revoked and its process killed (for a job stuck where it cannot check)."""
    job, was_running = store.request_cancel(job_id)
    if job.backend == Backend.celery and (not was_running or terminate):
        _revoke(celery_task_id(job), terminate=was_running and terminate)
    if was_running and terminate and job.backend == Backend.celery:
        store.finish(job_id, JobStatus.cancelled, message="cancelled: the task was terminated")
        job = store.get_job(job_id)
    return job


def _revoke(task_id: str, terminate: bool = False) -> None:
    # Best effort: the job row already says cancelled, and a runner never claims a cancelled job.
    if not broker.status().redis_ok:
        return
    try:
        celery_app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    except Exception as exc:
        log.info("revoke of %s not delivered: %s", task_id, exc)
