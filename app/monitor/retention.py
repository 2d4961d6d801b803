"""Retention: delete what is past its keeping time, a batch at a time.

- scans older than RETENTION_SCAN_DAYS whose job has finished go, with their job (the raw scan data);
- finished jobs older than RETENTION_JOB_DAYS go, except a job that a kept scan points at, because a
  scan's status is its job's; a deleted job's log lines go with it;
- deliveries that are closed (sent or failed) and older than RETENTION_DELIVERY_DAYS go, with their
  log of attempts;
- when Redis answers, the Celery results of every deleted job go too (they expire by themselves after
  RESULT_EXPIRES otherwise).

Each batch is its own short transaction, so a large backlog never holds SQLite's write lock for long,
and every DELETE checks its conditions again, so a row that changed since it was selected (a job
requeued meanwhile) stays.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import aliased

from app.db import session_scope
from app.jobs import broker, dispatch
from app.jobs import log as joblog
from app.jobs.celery_app import celery_app
from app.models import FINISHED_STATES, Delivery, DeliveryAttempt, Job, JobStatus, Scan, utcnow
from app.settings import get_settings

log = logging.getLogger(__name__)

TASK = "retention_cleanup"  # the registered job that runs prune()
JOB = "retention_cleanup"  # the job that runs prune() (app/tasks.py), started by the scheduler's tick
BATCH_SIZE = 500
CLOSED_DELIVERY_STATES = ("sent", "failed")
_FINISHED = [s.value for s in FINISHED_STATES]


def prune(now: datetime | None = None, batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete old scans, jobs and deliveries (and the pruned jobs' Celery results). Returns what was deleted."""
    settings = get_settings()
    now = _utc(now) if now is not None else utcnow()
    counts = {"scans": 0, "jobs": 0, "deliveries": 0, "delivery_attempts": 0, "celery_results": 0}
    results = _CeleryResults()
    try:
        _prune_scans(now - timedelta(days=settings.retention_scan_days), batch_size, counts, results)
        _prune_jobs(now - timedelta(days=settings.retention_job_days), batch_size, counts, results)
        _prune_deliveries(now - timedelta(days=settings.retention_delivery_days), batch_size, counts)
    finally:
        counts["celery_results"] = results.removed
        results.close()
    if any(counts.values()):
        log.info("retention: deleted %s", counts)
    return counts


def due(now: datetime | None = None) -> bool:
    """Whether to start a clean-up job now: none is queued or running, none started within
    RETENTION_INTERVAL_SECONDS, and the database holds something older than that (a fresh install has
    nothing to prune). Two tickers racing may both start one; prune() twice is harmless."""
    now = _utc(now) if now is not None else utcnow()
    since = now - timedelta(seconds=get_settings().retention_interval_seconds)
    active = Job.status.in_([JobStatus.queued.value, JobStatus.running.value])
    with session_scope() as session:
        recent = session.exec(select(Job.id).where(Job.name == TASK, active | (Job.created_at >= since)).limit(1))
        if recent.first() is not None:
            return False
        old = session.exec(select(Job.id).where(Job.created_at < since).limit(1))
        return old.first() is not None


def _utc(value: datetime) -> datetime:
    # Timestamps are stored as UTC; a naive `now` is taken to be UTC as well.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _job_finished(job_id: Any) -> Any:
    """True when the job is gone or finished: nothing is running that still needs the row."""
    other = aliased(Job)  # not correlated with a Job already in the enclosing query
    unfinished = select(other.id).where(other.id == job_id, other.status.not_in(_FINISHED))
    return or_(job_id.is_(None), ~exists(unfinished))


def _prune_scans(cutoff: datetime, batch_size: int, counts: dict[str, int], results: _CeleryResults) -> None:
    old_scan = (Scan.created_at < cutoff) & _job_finished(Scan.job_id)
    while True:
        with session_scope() as session:
            rows = session.exec(
                select(Scan.id, Scan.job_id, Job.runs)
                .outerjoin(Job, Job.id == Scan.job_id)
                .where(old_scan)
                .limit(batch_size)
            ).all()
            if not rows:
                return
            scan_ids = [scan_id for scan_id, _, _ in rows]
            counts["scans"] += session.exec(delete(Scan).where(Scan.id.in_(scan_ids), old_scan)).rowcount
            job_ids = [job_id for _, job_id, runs in rows if job_id and runs is not None]
            if job_ids:
                # Only jobs that no scan points at any more (their scan was deleted just above).
                orphan = Job.id.in_(job_ids) & Job.status.in_(_FINISHED) & ~exists().where(Scan.job_id == Job.id)
                counts["jobs"] += session.exec(delete(Job).where(orphan)).rowcount
                _delete_logs(session, job_ids)
        results.forget([(job_id, runs) for _, job_id, runs in rows if job_id and runs is not None])
        if len(rows) < batch_size:
            return


def _prune_jobs(cutoff: datetime, batch_size: int, counts: dict[str, int], results: _CeleryResults) -> None:
    # A cancelled-while-queued job has finished_at too; created_at covers rows written before it was set.
    old_job = (
        Job.status.in_(_FINISHED)
        & (func.coalesce(Job.finished_at, Job.created_at) < cutoff)
        & ~exists().where(Scan.job_id == Job.id)
    )
    while True:
        with session_scope() as session:
            rows = session.exec(select(Job.id, Job.runs).where(old_job).limit(batch_size)).all()
            if not rows:
                return
            ids = [job_id for job_id, _ in rows]
            counts["jobs"] += session.exec(delete(Job).where(Job.id.in_(ids), old_job)).rowcount
            _delete_logs(session, ids)
        results.forget([(job_id, runs) for job_id, runs in rows])
        if len(rows) < batch_size:
            return


def _delete_logs(session: Any, job_ids: list[str]) -> None:
    """The log lines of those of `job_ids` whose job row is gone now (one that changed meanwhile stays)."""
    present = set(session.exec(select(Job.id).where(Job.id.in_(job_ids))).scalars())
    joblog.delete_for([job_id for job_id in job_ids if job_id not in present], session=session)


def _prune_deliveries(cutoff: datetime, batch_size: int, counts: dict[str, int]) -> None:
    # updated_at is when the delivery was closed (sent, or failed after its last attempt).
    old_delivery = Delivery.status.in_(CLOSED_DELIVERY_STATES) & (Delivery.updated_at < cutoff)
    while True:
        with session_scope() as session:
            ids = list(session.exec(select(Delivery.id).where(old_delivery).limit(batch_size)).scalars())
            if not ids:
                return
            # The attempts would go by ON DELETE CASCADE; deleting them first counts them and does not
            # depend on SQLite's foreign_keys pragma.
            gone = Delivery.id.in_(ids) & old_delivery
            attempts = DeliveryAttempt.delivery_id.in_(select(Delivery.id).where(gone))
            counts["delivery_attempts"] += session.exec(delete(DeliveryAttempt).where(attempts)).rowcount
            counts["deliveries"] += session.exec(delete(Delivery).where(gone)).rowcount
        if len(ids) < batch_size:
            return


class _CeleryResults:
    """Deletes the Celery result keys of deleted jobs; does nothing when Redis does not answer."""

    def __init__(self) -> None:
        self.removed = 0
        self._client: redis.Redis | None = None
        self._backend: Any = None
        if broker.ping_redis():
            self._backend = celery_app.backend  # names the keys: celery-task-meta-<task id>
            self._client = broker.redis_client(timeout=2)

    def forget(self, jobs: list[tuple[str, int]]) -> None:
        if self._client is None or not jobs:
            return
        keys = [
            self._backend.get_key_for_task(task_id)
            for job_id, runs in jobs
            for task_id in dispatch.celery_task_ids(job_id, runs)
        ]
        try:
            self.removed += int(self._client.delete(*keys))
        except (redis.RedisError, OSError) as exc:
            # Not fatal: results expire on their own. Stop trying for this pass.
            log.warning("retention: could not delete Celery results from Redis: %s", exc)
            self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
