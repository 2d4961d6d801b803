"""The job API against a real web server process, in fallback and in Celery mode."""

import pytest

from tests.support.processes import run_cli, wait_for


def _job_count(web) -> int:
    return web.get("/api/v1/jobs", params={"limit": 1000}).json()["count"]


def test_healthz_in_fallback(shared_web):
    body = shared_web.health()
    assert body["status"] == "ok" and body["mode"] == "fallback" and body["redis"] == "unreachable"
    assert body["workers"] == 0 and body["db"] == "ok" and body["version"]
    assert "not reachable; jobs run inside the web process" in body["reason"]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/api/v1/jobs/trigger/no_such_task", {}, 404, "no task named 'no_such_task'"),
        ("/api/v1/jobs/trigger/diag_sleep", {"seconds": -5}, 422, "greater than or equal to 0"),
        ("/api/v1/jobs/trigger/diag_sleep", {"unknown_arg": 1}, 422, "unknown_arg"),
        ("/api/v1/jobs/trigger/diag_sleep", [1, 2], 422, "valid dictionary"),
        ("/api/v1/jobs/trigger/diag_sleep", "{not json", 422, "not valid JSON"),
    ],
)
def test_bad_trigger_input_is_refused_and_writes_nothing(shared_web, path, body, status, needle):
    before = _job_count(shared_web)
    if isinstance(body, str):
        response = shared_web.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = shared_web.post(path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    assert "Traceback" not in response.text
    assert _job_count(shared_web) == before


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/jobs/not-a-job-id", 404),
        ("get", "/api/v1/jobs/" + "0" * 32, 404),
        ("post", "/api/v1/jobs/" + "0" * 32 + "/cancel", 404),
        ("post", "/api/v1/jobs/../../etc/passwd/requeue", 404),
        ("get", "/api/v1/jobs?status=exploded", 422),
        ("get", "/api/v1/jobs?limit=0", 422),
        ("get", "/api/v1/jobs?limit=100000", 422),
    ],
)
def test_bad_lookups(shared_web, method, path, status):
    response = getattr(shared_web, method)(path)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_fallback_job_lifecycle(fallback_web):
    job = fallback_web.trigger("diag_sleep", seconds=0.5, steps=5)
    assert job["status"] == "queued" and job["backend"] == "background"
    done = fallback_web.wait_job(job["job_id"])
    assert done["status"] == "succeeded" and done["progress"] == 100 and done["result"] == {"slept": 0.5}
    assert done["started_at"] and done["finished_at"]

    # requeue a finished job; cancel is refused once it is over
    again = fallback_web.post(f"/api/v1/jobs/{job['job_id']}/requeue")
    assert again.status_code == 202 and again.json()["runs"] == 2
    fallback_web.wait_job(job["job_id"])
    refused = fallback_web.post(f"/api/v1/jobs/{job['job_id']}/cancel")
    assert refused.status_code == 409 and "nothing to cancel" in refused.json()["detail"]


def test_fallback_cancel_running_and_requeue_refused(fallback_web):
    job = fallback_web.trigger("diag_sleep", seconds=30, steps=300)
    fallback_web.wait_job(job["job_id"], states=("running",))
    assert fallback_web.post(f"/api/v1/jobs/{job['job_id']}/requeue").status_code == 409
    response = fallback_web.post(f"/api/v1/jobs/{job['job_id']}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"]
    assert fallback_web.wait_job(job["job_id"], timeout=20)["status"] == "cancelled"


def test_failed_job_reports_its_error(fallback_web):
    job = fallback_web.trigger("diag_fail", message="deliberate failure")
    done = fallback_web.wait_job(job["job_id"])
    assert done["status"] == "failed" and "deliberate failure" in done["error"]


def test_web_keeps_answering_while_cpu_jobs_run_in_fallback(fallback_web):
    ids = [fallback_web.trigger("diag_cpu", seconds=3)["job_id"] for _ in range(4)]
    for _ in range(10):
        assert fallback_web.get("/healthz").status_code == 200
        assert fallback_web.get("/jobs").status_code == 200
    for job_id in ids:
        assert fallback_web.wait_job(job_id, timeout=90)["status"] == "succeeded"


def test_listing_and_queues(fallback_web):
    ids = [fallback_web.trigger("health_check")["job_id"] for _ in range(3)]
    for job_id in ids:
        fallback_web.wait_job(job_id)
    listed = fallback_web.get("/api/v1/jobs", params={"name": "health_check", "status": "succeeded"}).json()
    assert {j["job_id"] for j in listed["jobs"]} >= set(ids)
    queues = fallback_web.get("/api/v1/jobs/queues").json()
    assert queues["mode"] == "fallback"
    assert queues["queues"]["default"]["jobs"]["succeeded"] >= 3
    assert set(queues["queues"]) >= {"default", "scans", "secrets"}


def test_celery_mode_end_to_end(web, worker, celery_env):
    wait_for(lambda: web.health()["mode"] == "celery", 15, what="celery mode")
    health = web.health()
    assert health["redis"] == "ok" and health["workers"] == 1

    job = web.trigger("health_check")
    assert job["backend"] == "celery"
    done = web.wait_job(job["job_id"])
    assert done["result"]["mode"] == "celery" and done["result"]["worker"].startswith("w1@")

    running = web.trigger("diag_sleep", seconds=30, steps=300)
    web.wait_job(running["job_id"], states=("running",))
    wait_for(lambda: web.job(running["job_id"])["progress"] > 0, 10, what="progress")
    web.post(f"/api/v1/jobs/{running['job_id']}/cancel")
    assert web.wait_job(running["job_id"], timeout=20)["status"] == "cancelled"

    again = web.post(f"/api/v1/jobs/{running['job_id']}/requeue").json()
    assert again["status"] == "queued" and again["backend"] == "celery"
    web.post(f"/api/v1/jobs/{running['job_id']}/cancel")
    assert web.wait_job(running["job_id"], timeout=20)["status"] == "cancelled"

    queues = web.get("/api/v1/jobs/queues").json()
    assert queues["mode"] == "celery" and queues["queues"]["default"]["workers"] == [done["result"]["worker"]]

    # the CLI sees the same jobs
    out = run_cli(celery_env, "jobs", "show", job["job_id"])
    assert out.returncode == 0 and '"succeeded"' in out.stdout


def test_cancel_while_queued_then_requeue_runs(web, celery_env):
    # No worker consumes "default" yet: the job runs in fallback... so use a worker on another queue only.
    from tests.support.processes import Worker

    other = Worker(celery_env, name="scansonly", queues="scans").start()
    try:
        wait_for(lambda: web.health()["workers"] == 1, 15, what="worker seen")
        job = web.trigger("diag_sleep", seconds=0.1, steps=1)
        # nobody consumes "default": the dispatcher must not leave it waiting in Redis
        assert job["backend"] == "background"
        assert web.wait_job(job["job_id"])["status"] == "succeeded"
    finally:
        other.stop()
