"""POST /api/v1/secrets/scan end to end: a real web server, a real Celery worker (or the fallback
pool), a real local web app to crawl; findings stored, de-duplicated, listed per job and asset."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["celery", "fallback"])
def server(request):
    if request.param == "celery":
        request.getfixturevalue("worker")
        return request.getfixturevalue("web")
    return request.getfixturevalue("fallback_web")


def _scan(server, url: str) -> dict:
    response = server.post("/api/v1/secrets/scan", json={"url": url})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["queue"] == "secrets" and accepted["status"] == "queued"
    return server.wait_job(accepted["job_id"], timeout=60)


def test_scan_a_url_store_findings_and_deduplicate(server, lab):
    site, _, planted = lab
    job = _scan(server, site.url + "/")
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["asset"] == "127.0.0.1" and result["new_findings"] == len(planted)
    assert {(f["url"].removeprefix(site.url), f["rule"]) for f in result["findings"]} == {
        (p.path, p.rule) for p in planted
    }
    assert {"/api/v2/users/me", "https://api.lab.test/v1/graphql"} <= {e["value"] for e in result["endpoints"]}
    assert job["progress"] == 100 and "secrets found" in job["message"]
    assert not [p.rule for p in planted if p.value in str(job)]  # no full secret in the job's result

    listed = server.get("/api/v1/secrets/findings", params={"job_id": job["job_id"]}).json()
    assert listed["count"] == len(planted)
    text = str(listed)
    for p in planted:
        assert p.value not in text  # redacted everywhere unless revealed
    one = next(f for f in listed["findings"] if f["rule"] == "github-pat")
    assert all(f["triage"] is None for f in listed["findings"])  # nobody has triaged anything yet
    (where,) = one["locations"]
    assert where["source"] == "webpack://lab/./src/config.ts" and where["source_line"] == 3

    # The same secrets seen again: no new findings, one more sighting each.
    again = _scan(server, site.url + "/")
    assert again["result"]["new_findings"] == 0
    per_asset = server.get("/api/v1/secrets/findings", params={"asset": "127.0.0.1"}).json()
    assert per_asset["count"] == len(planted)
    assert all(f["sightings"] == 2 and f["last_job_id"] == again["job_id"] for f in per_asset["findings"])
    assets = server.get("/api/v1/secrets/assets").json()["assets"]
    assert assets == [{"asset": "127.0.0.1", "findings": len(planted), "last_seen": assets[0]["last_seen"]}]

    open_ = server.get("/api/v1/secrets/findings", params={"status": "open", "job_id": job["job_id"]}).json()
    assert open_["count"] == len(planted)
    # Confidence from evidence: the fake GitHub token's checksum holds, so it is high.
    sure = server.get("/api/v1/secrets/findings", params={"min_confidence": "high"}).json()["findings"]
    assert "github-pat" in {f["rule"] for f in sure} and all(f["confidence"] == "high" for f in sure)
    assert len(sure) < len(planted)

    revealed = server.post(f"/api/v1/secrets/findings/{one['id']}/reveal").json()
    assert revealed["secret"] == next(p.value for p in planted if p.rule == "github-pat")
    detail = server.get(f"/api/v1/secrets/findings/{one['id']}").json()
    assert len(detail["locations"]) == 2 and revealed["secret"] not in str(detail)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"url": "ftp://127.0.0.1/"}, "only http:// and https://"),
        ({"url": "http://"}, "no host name"),
        ({"url": "http://127.0.0.1/ x"}, "spaces"),
        ({}, "url: Field required"),
        ({"url": "http://127.0.0.1/", "depth": 9}, "Extra inputs are not permitted"),
        ({"url": 5}, "valid string"),
    ],
)
def test_bad_scan_requests_are_refused_and_write_nothing(shared_web, body, needle):
    before = shared_web.get("/api/v1/jobs", params={"limit": 1000}).json()["count"]
    response = shared_web.post("/api/v1/secrets/scan", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"] and "Traceback" not in response.text
    assert shared_web.get("/api/v1/jobs", params={"limit": 1000}).json()["count"] == before


def test_bad_confidence_filters_and_verification_while_it_is_off(shared_web):
    bad = shared_web.get("/api/v1/secrets/findings", params={"min_confidence": "certain"})
    assert bad.status_code == 422 and "min_confidence" in bad.text
    off = shared_web.post("/api/v1/secrets/findings/1/verify")
    assert off.status_code == 409 and "SECRETS_VERIFY=true" in off.json()["detail"]
    assert shared_web.post("/api/v1/secrets/findings/1/verify", auth=False).status_code == 401


def test_unknown_findings_and_jobs_are_404(shared_web):
    assert shared_web.get("/api/v1/secrets/findings/999").status_code == 404
    assert shared_web.post("/api/v1/secrets/findings/999/reveal").status_code == 404
    assert shared_web.post("/api/v1/secrets/findings/999/triage", json={"status": "open"}).status_code == 404
    # Without credentials: nothing, not even whether the finding exists.
    assert shared_web.post("/api/v1/secrets/findings/999/reveal", auth=False).status_code == 401
    response = shared_web.get("/api/v1/secrets/findings", params={"job_id": "0" * 32})
    assert response.status_code == 404 and "no job" in response.json()["detail"]
    assert shared_web.get("/api/v1/secrets/findings", params={"job_id": "nope"}).status_code == 404
