"""GET /metrics on a real web server: fallback and celery mode, job counts, the duration histogram."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from app.monitor.metrics import DURATION_BUCKETS
from tests.support.processes import WebServer, Worker, wait_for

Samples = dict[tuple[str, frozenset], float]


def scrape(web: WebServer) -> tuple[dict, Samples]:
    response = web.get("/metrics")
    assert response.status_code == 200, (
        f"GET /metrics answered {response.status_code}: is app.web.metrics.router included in app/main.py?"
    )
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families.values()
        for sample in family.samples
    }
    return families, samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, frozenset(labels.items()))]


def check_histogram(samples: Samples, queue: str, name: str) -> dict[str, float]:
    """The buckets of one (queue, name) series: every bound present, cumulative, +Inf equal to the count."""
    metric = "assetmon_job_duration_seconds"
    buckets = {
        dict(labels)["le"]: v
        for (sample, labels), v in samples.items()
        if sample == f"{metric}_bucket" and dict(labels)["queue"] == queue and dict(labels)["name"] == name
    }
    bounds = sorted(float(le) for le in buckets)
    assert bounds == [float(b) for b in DURATION_BUCKETS] + [math.inf], bounds
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts), f"buckets are not cumulative: {buckets}"
    assert buckets["+Inf"] == value(samples, f"{metric}_count", queue=queue, name=name)
    return buckets


def test_metrics_in_fallback_mode(fallback_web: WebServer):
    families, samples = scrape(fallback_web)
    assert value(samples, "assetmon_fallback_mode") == 1
    assert value(samples, "assetmon_redis_up") == 0
    assert value(samples, "assetmon_workers") == 0
    assert value(samples, "assetmon_db_up") == 1
    assert families["assetmon_queue_depth"].samples == []  # nothing to count without Redis
    assert value(samples, "assetmon_jobs", state="succeeded", queue="default", backend="background") == 0
    for status in ("pending", "sending", "sent", "failed"):
        assert value(samples, "assetmon_notification_deliveries_total", status=status) == 0
    for family in ("assetmon_scans_total", "assetmon_secret_findings_total", "assetmon_events_total"):
        assert families[family].type == "gauge"

    slept = fallback_web.trigger("diag_sleep", seconds=0.3, steps=1)["job_id"]
    failed = fallback_web.trigger("diag_fail")["job_id"]
    assert fallback_web.wait_job(slept)["status"] == "succeeded"
    assert fallback_web.wait_job(failed)["status"] == "failed"

    _, samples = scrape(fallback_web)
    assert value(samples, "assetmon_jobs", state="succeeded", queue="default", backend="background") == 1
    assert value(samples, "assetmon_jobs", state="failed", queue="default", backend="background") == 1
    assert value(samples, "assetmon_jobs", state="running", queue="default", backend="background") == 0
    buckets = check_histogram(samples, "default", "diag_sleep")
    assert buckets["0.1"] == 0 and buckets["3600.0"] == 1  # it slept 0.3 s
    assert value(samples, "assetmon_job_duration_seconds_sum", queue="default", name="diag_sleep") >= 0.3
    assert check_histogram(samples, "default", "diag_fail")["+Inf"] == 1

    assert "/metrics" not in fallback_web.get("/openapi.json").json()["paths"]


def test_metrics_in_celery_mode(web: WebServer, worker: Worker):
    wait_for(lambda: web.health()["mode"] == "celery", 30, what="celery mode")
    job_id = web.trigger("diag_sleep", seconds=0.1, steps=1)["job_id"]
    assert web.wait_job(job_id)["status"] == "succeeded"

    families, samples = scrape(web)
    assert value(samples, "assetmon_fallback_mode") == 0
    assert value(samples, "assetmon_redis_up") == 1
    assert value(samples, "assetmon_workers") >= 1
    depth = {s.labels["queue"]: s.value for s in families["assetmon_queue_depth"].samples}
    assert set(depth) == {"default", "scans", "secrets"} and all(v >= 0 for v in depth.values())
    assert value(samples, "assetmon_jobs", state="succeeded", queue="default", backend="celery") == 1
    assert check_histogram(samples, "default", "diag_sleep")["+Inf"] == 1
