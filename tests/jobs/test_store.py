"""The job lifecycle on a real SQLite database (WAL mode)."""

import subprocess
import sys

import pytest
from sqlalchemy import text

from app.db import get_engine
from app.jobs import store as jobs
from app.models import JobStatus


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_mode(settings_env):
    with get_engine().connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_claim_is_exclusive_and_finish_is_final(settings_env):
    job = jobs.create_job("diag_sleep", {}, "default", "celery")
    claimed = jobs.claim(job.id, "host:1", max_attempts=3, stale_after=60)
    assert claimed.status == "running" and claimed.attempts == 1
    assert jobs.claim(job.id, "host:2", max_attempts=3, stale_after=60) is None  # alive elsewhere
    assert jobs.finish(job.id, JobStatus.succeeded, result={"ok": 1}, runner="host:1")
    assert not jobs.finish(job.id, JobStatus.failed, error="late")  # final states stay final
    done = jobs.get_job(job.id)
    assert done.status == "succeeded" and done.progress == 100 and done.result == {"ok": 1}
    assert jobs.claim(job.id, "host:3", max_attempts=3, stale_after=60) is None  # re-delivery is ignored


def test_a_dead_runner_is_taken_over(settings_env):
    import socket

    job = jobs.create_job("diag_sleep", {}, "default", "celery")
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    jobs.claim(job.id, dead, max_attempts=3, stale_after=60)
    again = jobs.claim(job.id, "me:1", max_attempts=3, stale_after=60)
    assert again is not None and again.attempts == 2 and again.runner == "me:1"


def test_attempts_are_bounded(settings_env):
    import socket

    job = jobs.create_job("diag_sleep", {}, "default", "celery")
    for _ in range(2):
        assert jobs.claim(job.id, f"{socket.gethostname()}:{_dead_pid()}", max_attempts=2, stale_after=60)
    assert jobs.claim(job.id, "me:1", max_attempts=2, stale_after=60) is None
    failed = jobs.get_job(job.id)
    assert failed.status == "failed" and "gave up after 2 attempts" in failed.error


def test_cancel_queued_and_running(settings_env):
    queued = jobs.create_job("diag_sleep", {}, "default", "celery")
    job, was_running = jobs.request_cancel(queued.id)
    assert job.status == "cancelled" and not was_running
    assert jobs.claim(queued.id, "host:1", 3, 60) is None  # a cancelled job never starts

    running = jobs.create_job("diag_sleep", {}, "default", "celery")
    jobs.claim(running.id, "host:1", 3, 60)
    job, was_running = jobs.request_cancel(running.id)
    assert was_running and job.cancel_requested and job.status == "running"
    assert jobs.report_progress(running.id, "host:1", 50, "half") is True  # the runner learns at its checkpoint

    with pytest.raises(jobs.JobStateError, match="already cancelled"):
        jobs.request_cancel(queued.id)
    with pytest.raises(jobs.JobNotFound):
        jobs.request_cancel("0" * 32)


def test_requeue_only_finished_jobs(settings_env):
    job = jobs.create_job("diag_sleep", {"seconds": 1}, "default", "celery")
    with pytest.raises(jobs.JobStateError, match="only finished jobs"):
        jobs.reset_for_requeue(job.id)
    jobs.claim(job.id, "host:1", 3, 60)
    jobs.finish(job.id, JobStatus.failed, error="boom", runner="host:1")
    again = jobs.reset_for_requeue(job.id)
    assert again.status == "queued" and again.error is None and again.runs == 2 and again.kwargs == {"seconds": 1}


def test_progress_is_clamped_and_results_capped(settings_env):
    job = jobs.create_job("diag_sleep", {}, "default", "celery")
    jobs.claim(job.id, "host:1", 3, 60)
    jobs.report_progress(job.id, "host:1", 250, "x" * 1000)
    row = jobs.get_job(job.id)
    assert row.progress == 100 and len(row.message) == 500
    jobs.finish(job.id, JobStatus.succeeded, result={"blob": "a" * (jobs.MAX_RESULT_BYTES + 10)}, runner="host:1")
    assert jobs.get_job(job.id).result["truncated"] is True


def test_queue_counts(settings_env):
    jobs.create_job("diag_sleep", {}, "default", "celery")
    jobs.create_job("diag_sleep", {}, "scans", "celery")
    counts = jobs.queue_counts()
    assert counts["default"]["queued"] == 1 and counts["scans"]["queued"] == 1
