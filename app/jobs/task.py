"""`@job`: a plain function, wrapped once for Celery, callable through the dispatcher.

@job(queue="scans")
def scan_target(target_id: int) -> dict: ...

scan_target(target_id=1)                  # plain call, no job row
handle = scan_target.delay(target_id=1)   # a job: Celery worker, fallback pool or eager
handle.get(timeout=60)                    # wait for its result
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import Task

from app.errors import JobFailed
from app.jobs import dispatch, registry, store
from app.jobs.celery_app import celery_app
from app.jobs.runner import run_job
from app.models import Job


class JobHandle:
    """What `.delay()` returns: a job id and a way to wait for the result."""

    def __init__(self, job_id: str) -> None:
        self.id = job_id

    def refresh(self) -> dict[str, Any]:
        return store.to_dict(store.get_job(self.id))

    @property
    def status(self) -> str:
        return self.refresh()["status"]

    def get(self, timeout: float | None = 30.0, interval: float = 0.05) -> Any:
        """Wait until the job finishes and return its result; raises JobFailed or TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.refresh()
            if job["status"] == "succeeded":
                return job["result"]
            if job["status"] in ("failed", "cancelled"):
                raise JobFailed(f"job {self.id} {job['status']}: {job['error'] or job['message']}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {job['status']} after {timeout} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id}>"


class JobTask:
    def __init__(self, spec: registry.TaskSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.__doc__ = spec.func.__doc__
        self.__wrapped__ = spec.func

    def __call__(self, **kwargs: Any) -> Any:
        return self.spec.func(**kwargs)

    def delay(self, **kwargs: Any) -> JobHandle:
        return JobHandle(dispatch.submit(self.name, kwargs).id)

    apply_async = delay

    def __repr__(self) -> str:
        return f"<JobTask {self.name} queue={self.spec.queue}>"


def _resend(job: Job, delay: float) -> None:
    dispatch.send(job, countdown=delay)


def _wrap_for_celery(spec: registry.TaskSpec) -> None:
    def celery_entry(self: Task, job_id: str) -> str | None:
        return run_job(job_id, mode="celery", worker=self.request.hostname, resend=_resend)

    celery_entry.__name__ = spec.name
    limits = {}
    if spec.time_limit:  # the job's own limit instead of the global one; the hard kill a minute later
        limits = {"soft_time_limit": spec.time_limit, "time_limit": spec.time_limit + 60}
    celery_app.task(name=dispatch.celery_task_name(spec.name), bind=True, queue=spec.queue, **limits)(celery_entry)


def job(
    name: str | None = None,
    *,
    queue: str = "default",
    idempotent: bool = False,
    time_limit: int | None = None,
    retries: int = 0,
    retry_backoff: float = 5.0,
) -> Callable[[Callable[..., Any]], JobTask]:
    """Register a function as a job. `idempotent` jobs are re-run after a crash instead of failed;
    `time_limit` (seconds) replaces JOB_SOFT_TIME_LIMIT for it; a `TransientError` it raises is
    retried `retries` times, `retry_backoff` seconds later, then twice that, and so on."""

    def decorate(func: Callable[..., Any]) -> JobTask:
        spec = registry.register(
            func,
            name=name or func.__name__,
            queue=queue,
            idempotent=idempotent,
            time_limit=time_limit,
            retries=retries,
            retry_backoff=retry_backoff,
        )
        _wrap_for_celery(spec)
        return JobTask(spec)

    return decorate
