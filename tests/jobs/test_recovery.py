"""Nothing stuck, nothing lost: killed workers, a Redis that goes away, a web process that restarts."""

import json
import os
import signal

import pytest

from tests.support.processes import WebServer, Worker, app_env, run_python, wait_for


def _make_rows(env, code: str) -> dict:
    prelude = (
        "import json, socket, subprocess, sys\n"
        "from app.jobs import store as jobs\nfrom app.db import ensure_migrated\nensure_migrated()\n"
        "p = subprocess.Popen([sys.executable, '-c', 'pass']); p.wait()\n"
        "dead = f'{socket.gethostname()}:{p.pid}'\n"
    )
    out = run_python(env, prelude + code)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_worker_killed_mid_job_is_redelivered(web, worker, celery_env):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    job = web.trigger("diag_sleep", seconds=4, steps=40)
    wait_for(lambda: web.job(job["job_id"])["progress"] >= 10, 20, what="job running on the worker")
    worker.kill()  # SIGKILL to the worker and its pool children
    replacement = Worker(celery_env, name="w2").start()
    try:
        done = web.wait_job(job["job_id"], timeout=90)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2  # ran again after the first runner died
    finally:
        replacement.stop()


def test_pool_child_killed_mid_job_is_redelivered(web, worker):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    job = web.trigger("diag_sleep", seconds=3, steps=30)
    running = wait_for(lambda: (j := web.job(job["job_id"]))["progress"] >= 10 and j, 20, what="job running")
    child_pid = int(running["runner"].rsplit(":", 1)[1])
    os.kill(child_pid, signal.SIGKILL)
    done = web.wait_job(job["job_id"], timeout=90)
    assert done["status"] in ("succeeded", "failed"), done
    if done["status"] == "failed":
        assert done["error"]
    assert done["runner"] != running["runner"] or done["status"] == "failed"


def test_redis_killed_and_back(own_redis, data_dir):
    env = app_env(data_dir, own_redis.url)
    web = WebServer(env).start()
    worker = Worker(env).start()
    try:
        wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
        own_redis.kill()
        wait_for(lambda: web.health()["mode"] == "fallback", 10, what="fallback after Redis died")
        assert web.health()["redis"] == "unreachable"
        assert web.get("/jobs").status_code == 200  # the UI stays up

        job = web.trigger("diag_sleep", seconds=0.2, steps=2)
        assert job["backend"] == "background"
        assert web.wait_job(job["job_id"])["status"] == "succeeded"

        own_redis.start()  # same port
        wait_for(lambda: web.health()["mode"] == "celery", 60, what="celery mode after Redis came back")
        job = web.trigger("health_check")
        assert job["backend"] == "celery"
        assert web.wait_job(job["job_id"], timeout=30)["result"]["mode"] == "celery"
    finally:
        worker.stop()
        web.stop()


def test_web_restart_settles_jobs_of_the_dead_process(fallback_env):
    rows = _make_rows(
        fallback_env,
        "a = jobs.create_job('diag_sleep', {'seconds': 0.1, 'steps': 1}, 'default', 'background')\n"
        "jobs.claim(a.id, dead, 3, 60)\n"
        "b = jobs.create_job('diag_fail', {}, 'default', 'background')\n"
        "jobs.claim(b.id, dead, 3, 60)\n"
        "c = jobs.create_job('diag_sleep', {'seconds': 0.1, 'steps': 1}, 'default', 'background')\n"
        "print(json.dumps({'idempotent': a.id, 'unsafe': b.id, 'queued': c.id}))\n",
    )
    web = WebServer(fallback_env).start()
    try:
        assert web.wait_job(rows["idempotent"])["status"] == "succeeded"  # re-run: safe to repeat
        unsafe = web.wait_job(rows["unsafe"])
        assert unsafe["status"] == "failed" and unsafe["error"].startswith("interrupted")
        assert web.wait_job(rows["queued"])["status"] == "succeeded"  # queued in the dead pool: sent again
    finally:
        web.stop()


def test_lost_celery_message_is_sent_again(web, worker, celery_env):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    # A job row that says "queued on Celery" but whose message Redis lost (e.g. restarted without data).
    rows = _make_rows(
        celery_env,
        "j = jobs.create_job('diag_sleep', {'seconds': 0.1, 'steps': 1}, 'default', 'celery')\n"
        "print(json.dumps({'id': j.id}))\n",
    )
    assert web.wait_job(rows["id"], timeout=60)["status"] == "succeeded"


@pytest.mark.parametrize("job_name", ["diag_sleep"])
def test_stale_running_job_on_a_silent_runner_is_requeued(web, worker, celery_env, job_name):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    rows = _make_rows(
        celery_env,
        f"j = jobs.create_job('{job_name}', {{'seconds': 0.1, 'steps': 1}}, 'default', 'celery')\n"
        "jobs.claim(j.id, 'another-host:4242', 3, 60)\n"  # a runner on another machine that went silent
        "print(json.dumps({'id': j.id}))\n",
    )
    done = web.wait_job(rows["id"], timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 2
