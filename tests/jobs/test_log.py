"""Job log lines: written by jobs as they run, bounded per job, kept with the job's state, pruned with it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app import tasks  # noqa: F401  (the job catalogue: registers the jobs submitted below)
from app.db import session_scope
from app.errors import JobLogError
from app.jobs import JobContext, current_job, dispatch
from app.jobs import log as joblog
from app.jobs import store as jobs
from app.models import Job, JobLog, JobStatus


def new_job(status: str = "queued", **values) -> str:
    job = Job(id=uuid.uuid4().hex, name="diag_sleep", status=status, **values)
    with session_scope() as session:
        session.add(job)
    return job.id


def messages(job_id: str) -> list[str]:
    return [line["message"] for line in joblog.lines(job_id, limit=5000)]


def test_lines_are_kept_in_order_and_read_after_an_id(settings_env):
    job_id, other = new_job(), new_job()
    for n in range(5):
        assert joblog.append(job_id, f"line {n}")
    joblog.append(other, "someone else's", "warning")
    everything = joblog.lines(job_id)
    assert [line["message"] for line in everything] == [f"line {n}" for n in range(5)]
    assert {line["level"] for line in everything} == {"info"} and everything[0]["at"].endswith("+00:00")
    after = joblog.lines(job_id, after_id=everything[2]["id"])
    assert [line["message"] for line in after] == ["line 3", "line 4"]
    assert [line["message"] for line in joblog.lines(job_id, limit=2)] == ["line 0", "line 1"]
    assert [line["message"] for line in joblog.tail(job_id, limit=2)] == ["line 3", "line 4"]
    assert joblog.count(job_id) == 5 and joblog.count(other) == 1
    assert joblog.lines("0" * 32) == [] and joblog.tail("0" * 32) == []


def test_a_line_is_capped_and_the_level_checked(settings_env):
    job_id = new_job()
    joblog.append(job_id, "x" * 5000, "error")
    (line,) = joblog.lines(job_id)
    assert len(line["message"]) == joblog.MAX_MESSAGE_CHARS and line["message"].endswith("…")
    assert line["level"] == "error"
    with pytest.raises(JobLogError, match="unknown log level 'debug'"):
        joblog.append(job_id, "nope", "debug")
    assert joblog.count(job_id) == 1


def test_a_job_keeps_at_most_max_lines_then_one_truncation_line(settings_env):
    job_id = new_job()
    with session_scope() as session:  # a job that has nearly filled its log
        session.add_all(JobLog(job_id=job_id, message=f"line {n}") for n in range(joblog.MAX_LINES - 1))
    assert joblog.append(job_id, "the last one kept") is True
    assert joblog.append(job_id, "one too many") is False
    assert joblog.append(job_id, "and another") is False
    assert joblog.count(job_id) == joblog.MAX_LINES + 1
    last_two = joblog.tail(job_id, limit=2)
    assert last_two[0]["message"] == "the last one kept"
    assert last_two[1]["message"].startswith("log truncated") and last_two[1]["level"] == "warning"
    assert joblog.append(new_job(), "another job is not affected") is True


def test_the_job_context_logs_only_inside_a_job(settings_env):
    current_job().log("nobody hears this")  # outside a job: nothing, no error
    job_id = new_job()
    JobContext(job_id=job_id).log("Ports: 3 open on 2 hosts")
    JobContext(job_id=job_id).log("a warning", "warning")
    assert messages(job_id) == ["Ports: 3 open on 2 hosts", "a warning"]
    with pytest.raises(JobLogError):
        JobContext(job_id=job_id).log("bad level", "loud")


def test_a_job_logs_its_start_and_its_outcome(settings_env):
    done = dispatch.submit("diag_sleep", {"seconds": 0, "steps": 1})  # no Redis, no web process: runs here
    assert jobs.get_job(done.id).status == "succeeded"
    lines = joblog.lines(done.id)
    assert lines[0]["message"].startswith("Started in fallback mode (Redis at ")
    assert lines[-1] == lines[-1] | {"message": "Succeeded: woke up", "level": "info"}

    failed = dispatch.submit("diag_fail", {"message": "on purpose <b>"})
    assert messages(failed.id)[-1] == "Failed: RuntimeError: on purpose <b>"
    assert joblog.lines(failed.id)[-1]["level"] == "error"

    retried = dispatch.submit("diag_flaky", {"key": "joblog", "fail_times": 1})
    text = messages(retried.id)
    assert text[0].startswith("Started in fallback mode")
    assert text[1].startswith("Queued again: retry 1 of 3") and "simulated outage 1 of 1" in text[1]
    assert text[2].startswith("Started again (retry 1)") and text[-1].startswith("Succeeded")


def test_an_outcome_is_logged_once_with_the_state_change(settings_env):
    job_id = new_job()
    jobs.request_cancel(job_id)
    assert messages(job_id) == ["Cancelled: cancelled while queued"]
    assert jobs.finish(job_id, JobStatus.failed, error="too late") is False  # already final: no line
    assert messages(job_id) == ["Cancelled: cancelled while queued"]

    running = new_job()
    assert jobs.claim(running, "me:1", max_attempts=3, stale_after=60) is not None
    jobs.request_cancel(running)
    assert jobs.finish(running, JobStatus.cancelled, message="cancelled on request", runner="someone-else") is False
    assert jobs.finish(running, JobStatus.cancelled, message="cancelled on request", runner="me:1") is True
    assert messages(running) == ["Cancelled: cancelled on request"]
    assert joblog.lines(running)[0]["level"] == "warning"


def test_retention_deletes_the_log_lines_of_the_jobs_it_prunes(settings_env):
    from app.monitor.retention import prune

    now = datetime(2030, 6, 1, tzinfo=UTC)
    old = new_job("succeeded", created_at=now - timedelta(days=400), finished_at=now - timedelta(days=400))
    young = new_job("succeeded", created_at=now - timedelta(hours=1), finished_at=now - timedelta(hours=1))
    for job_id in (old, young):
        joblog.append(job_id, "Started")
        joblog.append(job_id, "Succeeded: done")
    assert prune(now=now)["jobs"] == 1
    assert joblog.count(old) == 0 and joblog.count(young) == 2
