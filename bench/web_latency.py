"""Web latency while CPU-heavy jobs run: idle vs Celery vs fallback.

Starts its own redis-server, web servers and a worker on 127.0.0.1 (free ports, temp dir),
then measures GET /jobs p50/p95 with nothing running and while 8 `diag_cpu` jobs run.
Targets: p95 under load <= 2x idle with Celery, <= 5x idle in fallback.

    .venv/bin/python bench/web_latency.py [--requests 300] [--job-seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.settings import SPARE_CPUS
from tests.support.processes import RedisServer, WebServer, Worker, app_env, wait_for

# The defaults a user runs with (the test helpers shorten these to make failures show fast).
PRODUCTION_TIMINGS = {
    "JOB_HEARTBEAT_SECONDS": 5,
    "JOB_STALE_SECONDS": 60,
    "REAPER_INTERVAL_SECONDS": 15,
    "BROKER_PROBE_CACHE_SECONDS": 3,
    "WORKER_NICE": 10,
}


def measure(url: str, count: int, spacing: float = 0.02) -> dict[str, float]:
    samples = []
    with httpx.Client(timeout=30) as client:
        client.get(url)  # warm-up
        for _ in range(count):
            start = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            time.sleep(spacing)
    cuts = statistics.quantiles(samples, n=100)
    return {"p50": statistics.median(samples), "p95": cuts[94], "max": max(samples), "n": len(samples)}


def loaded(web: WebServer, requests: int, job_seconds: float, concurrency: int) -> dict[str, float]:
    ids = [web.trigger("diag_cpu", seconds=job_seconds)["job_id"] for _ in range(8)]
    wait_for(lambda: sum(web.job(i)["status"] == "running" for i in ids) >= concurrency, 60, what="jobs running")
    result = measure(web.url + "/jobs", requests)
    still_running = sum(web.job(i)["status"] == "running" for i in ids)
    for job_id in ids:
        web.post(f"/api/v1/jobs/{job_id}/cancel")
    for job_id in ids:
        web.wait_job(job_id, timeout=120)
    result["jobs_running_at_end"] = still_running
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--job-seconds", type=float, default=30.0)
    parser.add_argument(
        "--concurrency", type=int, default=SPARE_CPUS, help="worker processes / fallback processes (default: CPUs - 1)"
    )
    args = parser.parse_args()

    rows = []

    def idle_then_loaded(web: WebServer, mode: str) -> None:
        idle = measure(web.url + "/jobs", args.requests)
        rows.append((f"idle ({mode} web)", idle, None))
        load = loaded(web, args.requests, args.job_seconds, args.concurrency)
        rows.append((f"8 CPU jobs, {mode}", load, load["p95"] / idle["p95"]))

    with tempfile.TemporaryDirectory(prefix="assetmon-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis").start()
        env = app_env(root / "celery", redis.url, **PRODUCTION_TIMINGS)
        web = WebServer(env).start()
        worker = Worker(env, concurrency=args.concurrency).start()
        try:
            wait_for(lambda: web.health()["mode"] == "celery", 30, what="celery mode")
            idle_then_loaded(web, "celery")
        finally:
            worker.stop()
            web.stop()
            redis.stop()

        unreachable = "redis://127.0.0.1:1/0"
        env = app_env(root / "fallback", unreachable, FALLBACK_PROCESSES=args.concurrency, **PRODUCTION_TIMINGS)
        web = WebServer(env).start()
        try:
            idle_then_loaded(web, "fallback")
        finally:
            web.stop()

    print(f"\nGET /jobs latency, {args.requests} sequential requests per phase (ms); {os.cpu_count()} CPUs,")
    print(f"worker and fallback processes: {args.concurrency} (default {SPARE_CPUS}); 8 diag_cpu jobs queued")
    print(f"{'phase':<24}{'p50':>8}{'p95':>8}{'max':>8}{'p95/idle':>10}")
    for name, r, ratio in rows:
        print(f"{name:<24}{r['p50']:>8.2f}{r['p95']:>8.2f}{r['max']:>8.1f}{(f'{ratio:.2f}x' if ratio else ''):>10}")
    celery_ok = rows[1][2] <= 2.0
    fallback_ok = rows[3][2] <= 5.0
    print(f"\ncelery   p95 under load {rows[1][2]:.2f}x idle (target <= 2x): {'PASS' if celery_ok else 'FAIL'}")
    print(f"fallback p95 under load {rows[3][2]:.2f}x idle (target <= 5x): {'PASS' if fallback_ok else 'FAIL'}")
    return 0 if celery_ok and fallback_ok else 1


if __name__ == "__main__":
    sys.exit(main())
