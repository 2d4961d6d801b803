"""`health_check.delay().get()` as a user types it, in every situation: it answers within seconds."""

import json
import time

from tests.support.processes import run_python

USER_COMMAND = "from app.tasks import health_check; import json; print(json.dumps(health_check.delay().get()))"


def _run(env):
    start = time.monotonic()
    out = run_python(env, USER_COMMAND, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), time.monotonic() - start


def test_redis_unreachable_runs_eagerly_and_says_why(fallback_env):
    answer, _ = _run(fallback_env)
    assert answer["status"] == "ok" and answer["mode"] == "eager"
    assert "not reachable" in answer["reason"]
    assert answer["worker"] is None


def test_redis_up_but_no_worker_runs_eagerly(celery_env):
    answer, _ = _run(celery_env)
    assert answer["mode"] == "eager"
    assert "no Celery worker answered" in answer["reason"]


def test_worker_answers_in_celery_mode(celery_env, worker):
    answer, _ = _run(celery_env)
    assert answer["mode"] == "celery"
    assert answer["worker"].startswith("w1@")
    assert answer["pid"] in worker.child_pids()


def test_eager_job_records_progress_and_failure(fallback_env):
    code = (
        "from app.tasks import diag_sleep, diag_fail\n"
        "from app.errors import JobFailed\n"
        "h = diag_sleep.delay(seconds=0.2, steps=4); print(h.get())\n"
        "try:\n    diag_fail.delay(message='expected failure').get()\nexcept JobFailed as e:\n    print('FAILED', e)\n"
    )
    out = run_python(fallback_env, code)
    assert out.returncode == 0, out.stderr
    assert "{'slept': 0.2}" in out.stdout
    assert "FAILED" in out.stdout and "expected failure" in out.stdout
