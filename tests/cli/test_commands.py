"""`assetmon` as a user runs it."""

import json

from tests.support.processes import run_cli


def test_health_in_fallback(fallback_env):
    out = run_cli(fallback_env, "health", "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["mode"] == "fallback" and body["health_check"]["mode"] == "eager"


def test_health_with_a_worker(celery_env, worker):
    out = run_cli(celery_env, "health")
    assert out.returncode == 0, out.stderr
    assert "celery" in out.stdout and "w1@" in out.stdout


def test_jobs_commands(fallback_env):
    out = run_cli(fallback_env, "jobs", "trigger", "diag_sleep", "--arg", "seconds=0.1", "--wait")
    assert out.returncode == 0, out.stderr
    assert '"slept": 0.1' in out.stdout
    job_id = out.stdout.split()[1].rstrip(":")

    listed = run_cli(fallback_env, "jobs", "list", "--json")
    assert job_id in listed.stdout
    shown = run_cli(fallback_env, "jobs", "show", job_id)
    assert json.loads(shown.stdout)["status"] == "succeeded"
    cancel = run_cli(fallback_env, "jobs", "cancel", job_id)
    assert cancel.returncode == 2 and "nothing to cancel" in cancel.stderr
    requeue = run_cli(fallback_env, "jobs", "requeue", job_id)
    assert requeue.returncode == 0 and "succeeded" in requeue.stdout  # ran eagerly, in this process


def test_bad_input_exits_2_with_a_message(fallback_env):
    for args, needle in [
        (("jobs", "show", "nope"), "no job with id"),
        (("jobs", "trigger", "nope"), "no task named"),
        (("jobs", "trigger", "diag_sleep", "--arg", "seconds"), "NAME=VALUE"),
        (("jobs", "trigger", "diag_sleep", "--arg", "seconds=-1"), "greater than or equal"),
        (("jobs", "list", "--status", "bogus"), "unknown status"),
    ]:
        out = run_cli(fallback_env, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr


def test_bad_settings_exit_2(fallback_env):
    out = run_cli(dict(fallback_env, REDIS_URL="http://nope"), "health")
    assert out.returncode == 2 and "REDIS_URL" in out.stderr and "Traceback" not in out.stderr
