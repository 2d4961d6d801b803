"""Operator controls: filters, one-line status, terminating a stuck Celery task, scans on a chosen queue."""

from __future__ import annotations

import json

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import app_env, run_cli, wait_for


def test_terminate_a_task_that_never_reaches_a_checkpoint(web, worker):
    wait_for(lambda: web.health()["mode"] == "celery", 20, what="celery mode")
    stuck = web.trigger("diag_sleep", seconds=120, steps=1)["job_id"]  # one long sleep: no checkpoint to stop at
    wait_for(lambda: web.job(stuck)["status"] == "running", 20, what="running")
    cancelled = web.post(f"/api/v1/jobs/{stuck}/cancel", params={"terminate": "true"}).json()
    assert cancelled["status"] == "cancelled" and "terminated" in cancelled["message"]
    # The worker's pool replaced the killed process: the next job runs.
    quick = web.trigger("diag_sleep", seconds=0.2, steps=2)["job_id"]
    assert web.wait_job(quick, timeout=60)["status"] == "succeeded"
    assert web.job(stuck)["status"] == "cancelled"  # and the terminated one stays cancelled


def test_filters_status_and_queue_choice(tmp_path):
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    assert run_cli(env, "jobs", "trigger", "diag_sleep", "--arg", "seconds=0", "--wait").returncode == 0
    done = run_cli(env, "scan", "127.0.0.90", "--modules", "ports", "--ports", "1-5", "--queue", "default",
                   "--wait-for-completion", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hosts"] == [{"host": "127.0.0.90", "names": [], "open_ports": []}]
    listed = json.loads(run_cli(env, "jobs", "list", "--queue", "default", "--json").stdout)["jobs"]
    assert sorted(j["name"] for j in listed) == ["diag_sleep", "recon_scan"]  # the scan ran on the queue asked for
    assert json.loads(run_cli(env, "jobs", "list", "--queue", "scans", "--json").stdout)["count"] == 0
    status = run_cli(env, "jobs", "status", listed[0]["job_id"])
    assert status.returncode == 0 and status.stdout.startswith("succeeded 100%")
    assert run_cli(env, "jobs", "list", "--queue", "nope").returncode == 2
    bad = run_cli(env, "scan", "127.0.0.90", "--queue", "nope")
    assert bad.returncode == 2 and "unknown queue 'nope'" in bad.stderr
    assert run_cli(env, "jobs", "status", "0" * 32).returncode == 2


def test_transient_errors_are_retried_with_backoff_in_both_backends(tmp_path, web, worker):
    # Celery: re-delivered later by the broker (countdown); the worker slot is free meanwhile.
    wait_for(lambda: web.health()["mode"] == "celery", 20, what="celery mode")
    job = web.trigger("diag_flaky", key="celery", fail_times=2)["job_id"]
    done = web.wait_job(job, timeout=60)
    assert done["status"] == "succeeded" and done["result"] == {"calls": 3} and done["retries"] == 2
    # Out of retries: failed, with the reason.
    gave_up = web.wait_job(web.trigger("diag_flaky", key="never", fail_times=9)["job_id"], timeout=60)
    assert gave_up["status"] == "failed" and "gave up after 3 retries" in gave_up["error"]
    # Eager (a shell, no Redis): the same job, retried in place.
    env = app_env(tmp_path / "eager", UNREACHABLE_REDIS)
    eager = run_cli(env, "jobs", "trigger", "diag_flaky", "--arg", "fail_times=1", "--wait")
    assert eager.returncode == 0, eager.stderr
