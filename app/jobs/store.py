"""Job rows and their lifecycle: queued → running → succeeded | failed | cancelled.

Every state change is a conditional UPDATE, so two processes that race for the
same job (a re-delivered Celery message, a reaper, a cancel) cannot both win.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from app.db import session_scope
from app.errors import JobNotFound, JobStateError
from app.jobs import log as joblog
from app.models import FINISHED_STATES, Job, JobStatus, ScanChunk, aware, iso, utcnow

MAX_RESULT_BYTES = 1_000_000
MAX_ERROR_CHARS = 4000


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runner_is_dead(runner: str | None) -> bool:
    """True when the runner is a process on this host that no longer exists."""
    if not runner or ":" not in runner:
        return False
    host, _, pid = runner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


def create_job(name: str, kwargs: dict[str, Any], queue: str, backend: str) -> Job:
    job = Job(id=uuid.uuid4().hex, name=name, kwargs=kwargs, queue=queue, backend=backend)
    with session_scope() as session:
        session.add(job)
    return job


def get_job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def list_jobs(
    status: str | None = None, name: str | None = None, limit: int = 50, queue: str | None = None
) -> list[Job]:
    query = select(Job).order_by(col(Job.created_at).desc()).limit(limit)
    if status:
        query = query.where(Job.status == status)
    if name:
        query = query.where(Job.name == name)
    if queue:
        query = query.where(Job.queue == queue)
    with session_scope() as session:
        return list(session.exec(query).all())


def set_backend(job_id: str, backend: str, message: str = "") -> None:
    values: dict[str, Any] = {"backend": backend}
    if message:
        values["message"] = message[:500]
    _update(job_id, values)


def _update(job_id: str, values: dict[str, Any], *conditions: Any, line: tuple[str, str] | None = None) -> bool:
    """A conditional UPDATE; with `line` (message, level), the job's log line goes in the same transaction,
    so it is there exactly when the change it tells of is."""
    with session_scope() as session:
        result = session.exec(update(Job).where(Job.id == job_id, *conditions).values(**values))
        changed = result.rowcount == 1
        if changed and line is not None:
            joblog.append(job_id, line[0], line[1], session=session)
        return changed


def claim(job_id: str, runner: str, max_attempts: int, stale_after: float) -> Job | None:
    """Take a job for running. None when it is not ours to run (finished, cancelled, alive elsewhere)."""
    try:
        job = get_job(job_id)
    except JobNotFound:
        return None
    now = utcnow()
    if job.status == JobStatus.queued:
        condition = Job.status == JobStatus.queued.value
    elif job.status == JobStatus.running and (runner_is_dead(job.runner) or _stale(job, stale_after, now)):
        # A re-delivered job whose previous runner died: take it over.
        condition = (Job.status == JobStatus.running.value) & (Job.runner == job.runner)
    else:
        return None
    if job.cancel_requested:
        finish(job_id, JobStatus.cancelled, message="cancelled before it started")
        return None
    if job.attempts >= max_attempts:
        finish(
            job_id,
            JobStatus.failed,
            error=f"gave up after {job.attempts} attempts: the process running it stopped each time",
        )
        return None
    values = {
        "status": JobStatus.running.value,
        "runner": runner,
        "attempts": job.attempts + 1,
        "started_at": now,
        "heartbeat_at": now,
        "message": "started" if job.attempts == 0 else f"restarted (attempt {job.attempts + 1})",
    }
    if not _update(job_id, values, condition):
        return None
    return get_job(job_id)


def _stale(job: Job, stale_after: float, now: datetime) -> bool:
    beat = job.heartbeat_at or job.started_at
    return beat is None or (now - aware(beat)).total_seconds() > stale_after


def heartbeat(job_id: str, runner: str) -> bool:
    """Record that the runner is alive. False when the job is no longer ours."""
    return _update(
        job_id,
        {"heartbeat_at": utcnow()},
        Job.runner == runner,
        Job.status == JobStatus.running.value,
    )


def report_progress(job_id: str, runner: str, progress: int | None, message: str | None) -> bool:
    """Store progress; returns True when a cancel has been requested."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0, min(100, int(progress)))
    if message is not None:
        values["message"] = message[:500]
    _update(job_id, values, Job.runner == runner, Job.status == JobStatus.running.value)
    with session_scope() as session:
        flag = session.exec(select(Job.cancel_requested).where(Job.id == job_id)).first()
    return bool(flag)


def _jsonable(result: Any) -> Any:
    text = json.dumps(result, default=str)
    if len(text) > MAX_RESULT_BYTES:
        return {"truncated": True, "size": len(text), "note": "result too large to store"}
    return json.loads(text)


def finish(
    job_id: str,
    status: JobStatus,
    *,
    result: Any = None,
    error: str | None = None,
    message: str | None = None,
    runner: str | None = None,
) -> bool:
    """Move a job to a final state. With `runner`, only if that runner still owns it."""
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": utcnow(),
        "result": _jsonable(result) if result is not None else None,
        "error": error[:MAX_ERROR_CHARS] if error else None,
    }
    if status == JobStatus.succeeded:
        values["progress"] = 100
    default_message = {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}[status.value]
    values["message"] = (message or default_message)[:500]
    conditions = [col(Job.status).not_in([s.value for s in FINISHED_STATES])]
    if runner is not None:
        conditions.append(Job.runner == runner)
    finished = _update(job_id, values, *conditions, line=_outcome_line(status, values["message"], values["error"]))
    if finished:
        _drop_slices(job_id)
    return finished


def _drop_slices(job_id: str) -> None:
    """A finished job's scan slices are of no more use (a re-run writes its own)."""
    with session_scope() as session:
        session.exec(delete(ScanChunk).where(ScanChunk.job_id == job_id))


_OUTCOME_LEVELS = {"succeeded": "info", "failed": "error", "cancelled": "warning"}


def _outcome_line(status: JobStatus, message: str, error: str | None) -> tuple[str, str]:
    return f"{status.value.capitalize()}: {error or message}", _OUTCOME_LEVELS[status.value]


def request_cancel(job_id: str) -> tuple[Job, bool]:
    """Cancel a job. Returns (job, was_running): a queued job is cancelled at once,
    a running one is asked to stop and stops at its next progress report."""
    job = get_job(job_id)
    if JobStatus(job.status).finished:
        raise JobStateError(f"job {job_id} is already {job.status}; there is nothing to cancel")
    if job.status == JobStatus.queued and finish(job_id, JobStatus.cancelled, message="cancelled while queued"):
        return get_job(job_id), False
    _update(
        job_id,
        {"cancel_requested": True, "message": "cancel requested; stopping at the next checkpoint"},
        Job.status == JobStatus.running.value,
    )
    job = get_job(job_id)
    return job, job.status == JobStatus.running


def reset_for_requeue(job_id: str) -> Job:
    job = get_job(job_id)
    if not JobStatus(job.status).finished:
        raise JobStateError(f"job {job_id} is {job.status}; only finished jobs can be requeued")
    values = {
        "status": JobStatus.queued.value,
        "progress": 0,
        "message": "requeued",
        "result": None,
        "error": None,
        "attempts": 0,
        "runs": job.runs + 1,
        "cancel_requested": False,
        "runner": None,
        "started_at": None,
        "finished_at": None,
        "heartbeat_at": None,
        "created_at": utcnow(),
    }
    if not _update(job_id, values, Job.status == job.status):
        raise JobStateError(f"job {job_id} changed state while being requeued; try again")
    return get_job(job_id)


def retry_later(job_id: str, runner: str, message: str) -> Job | None:
    """A running job back to queued for another run after a transient error (its runner only)."""
    job = get_job(job_id)
    values = {
        "status": JobStatus.queued.value,
        "message": message[:500],
        "attempts": 0,
        "retries": job.retries + 1,
        "runs": job.runs + 1,
        "runner": None,
        "heartbeat_at": None,
    }
    line = (f"Queued again: {message}", "warning")
    if not _update(job_id, values, Job.status == JobStatus.running.value, Job.runner == runner, line=line):
        return None
    return get_job(job_id)


def mark_requeued_after_crash(job: Job, reason: str) -> bool:
    """Put a running job whose runner died back to queued (keeps its attempt count)."""
    return _update(
        job.id,
        {"status": JobStatus.queued.value, "runner": None, "message": f"re-queued: {reason}"[:500]},
        Job.status == JobStatus.running.value,
        Job.runner == job.runner,
        line=(f"Queued again: {reason}", "warning"),
    )


def fail_interrupted(job: Job, reason: str) -> bool:
    return _update(
        job.id,
        {
            "status": JobStatus.failed.value,
            "finished_at": utcnow(),
            "error": f"interrupted: {reason}",
            "message": "interrupted",
        },
        Job.status == job.status,
        Job.runner == job.runner if job.runner else col(Job.runner).is_(None),
        line=(f"Failed: interrupted: {reason}", "error"),
    )


def stuck_candidates(stale_after: float) -> list[Job]:
    """Running jobs whose runner is gone or silent for longer than `stale_after` seconds."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with session_scope() as session:
        running = session.exec(select(Job).where(Job.status == JobStatus.running.value)).all()
    return [
        job
        for job in running
        if runner_is_dead(job.runner) or aware(job.heartbeat_at or job.started_at or job.created_at) < cutoff
    ]


def queued_jobs(backend: str | None = None, older_than: float = 0) -> list[Job]:
    cutoff = utcnow() - timedelta(seconds=older_than)
    query = select(Job).where(Job.status == JobStatus.queued.value, Job.created_at <= cutoff)
    if backend:
        query = query.where(Job.backend == backend)
    with session_scope() as session:
        return list(session.exec(query.order_by(col(Job.created_at))).all())


def queue_counts() -> dict[str, dict[str, int]]:
    """Number of jobs per queue and state."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in JobStatus})
    with session_scope() as session:
        rows = session.exec(select(Job.queue, Job.status, func.count()).group_by(Job.queue, Job.status)).all()
    for queue, status, n in rows:
        counts[queue][status] = n
    return dict(counts)


def to_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "name": job.name,
        "queue": job.queue,
        "kwargs": job.kwargs,
        "status": job.status,
        "backend": job.backend,
        "progress": job.progress,
        "message": job.message,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "runs": job.runs,
        "retries": job.retries,
        "cancel_requested": job.cancel_requested,
        "runner": job.runner,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "heartbeat_at": iso(job.heartbeat_at),
    }
