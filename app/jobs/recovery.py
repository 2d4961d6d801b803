"""Nothing stuck, nothing lost: settle jobs whose runner died and re-send jobs whose message was lost."""

from __future__ import annotations

import logging

from app.errors import UnknownTask
from app.jobs import broker, dispatch, registry, store
from app.models import Backend, Job, JobStatus
from app.settings import get_settings

log = logging.getLogger(__name__)


def settle(job: Job, reason: str) -> str:
    """A running job's runner is gone: run it again when that is safe, otherwise fail it."""
    settings = get_settings()
    try:
        idempotent = registry.get(job.name).idempotent
    except UnknownTask:
        idempotent = False
    if idempotent and job.attempts < settings.job_max_attempts and not job.cancel_requested:
        if store.mark_requeued_after_crash(job, reason):
            dispatch.send(store.get_job(job.id))
            log.warning("job %s (%s) re-queued: %s", job.id, job.name, reason)
            return "requeued"
        return "unchanged"
    if job.cancel_requested:
        done = store.finish(job.id, JobStatus.cancelled, message=f"cancelled ({reason})")
    else:
        done = store.fail_interrupted(job, reason)
    if done:
        outcome = "cancelled" if job.cancel_requested else "failed"
        log.warning("job %s (%s) marked %s: %s", job.id, job.name, outcome, reason)
    return "failed" if done else "unchanged"


def recover_at_startup() -> dict[str, int]:
    """Run by the web process when it starts: fallback jobs of a previous web process died with it."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    for job in store.stuck_candidates(stale_after=0):
        if job.backend in (Backend.background, Backend.eager) and store.runner_is_dead(job.runner):
            outcome = settle(job, "the process running it stopped (restart)")
            counts[outcome] = counts.get(outcome, 0) + 1
    for job in store.queued_jobs(backend=Backend.background.value):
        dispatch.send(job)
        counts["resent"] += 1
    reaped = reap()
    for key, value in reaped.items():
        counts[key] = counts.get(key, 0) + value
    return counts


def reap() -> dict[str, int]:
    """Periodic check: running jobs whose runner is dead or silent, and Celery messages that were lost."""
    settings = get_settings()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    for job in store.stuck_candidates(settings.job_stale_seconds):
        if job.backend == Backend.background and not store.runner_is_dead(job.runner):
            continue  # alive in our own pool, just quiet
        outcome = settle(job, "its runner stopped responding")
        counts[outcome] = counts.get(outcome, 0) + 1
    status = broker.status()
    if status.redis_ok:
        waiting = store.queued_jobs(backend=Backend.celery.value, older_than=settings.job_stale_seconds)
        if waiting:
            known = broker.pending_task_ids([q for q in {j.queue for j in waiting}])
            for job in waiting:
                if known is not None and job.id not in known:
                    # Redis lost the message (restarted without its data): publish it again.
                    dispatch.send(job)
                    counts["resent"] += 1
    return counts
