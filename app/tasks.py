"""The job catalogue: every job AssetMon runs. Each is a plain function; `@job` wraps it once for Celery
and the fallback. Importing this module registers them all, so the entry points import it (the web app,
the worker, the CLI); the job machinery never does (it finds jobs by name in the registry).

from app.tasks import health_check
print(health_check.delay().get())
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from app import __version__
from app.db import check_db
from app.errors import TransientError
from app.jobs import current_job, job
from app.monitor import retention, watch
from app.net.urls import check_url
from app.recon import scans
from app.secrets.webscan import scan_url
from app.settings import get_settings


@job(idempotent=True)
def health_check() -> dict:
    """Answer from wherever jobs run now: a Celery worker, or eagerly in-process."""
    ctx = current_job()
    answer = {
        "status": "ok",
        "mode": "celery" if ctx.mode == "celery" else "eager",
        "worker": ctx.worker,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "db": "ok" if check_db() else "unreachable",
        "version": __version__,
        "time": datetime.now(UTC).isoformat(),
    }
    if ctx.reason and answer["mode"] == "eager":
        answer["reason"] = ctx.reason
    return answer


@job(idempotent=True)
def diag_sleep(
    seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0,
    steps: Annotated[int, Field(ge=1, le=1000)] = 10,
) -> dict:
    """Diagnostics: wait, reporting progress; cancellable at every step."""
    ctx = current_job()
    for step in range(steps):
        ctx.progress(step * 100 // steps, f"sleeping, step {step + 1} of {steps}")
        time.sleep(seconds / steps)
    ctx.progress(100, "woke up")
    return {"slept": seconds}


@job(idempotent=True)
def diag_cpu(seconds: Annotated[float, Field(ge=0, le=600)] = 2.0) -> dict:
    """Diagnostics: keep one CPU busy (hashing) for a while, to test capacity and responsiveness."""
    ctx = current_job()
    start = time.monotonic()
    digest = b"assetmon"
    rounds = 0
    while (elapsed := time.monotonic() - start) < seconds:
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        rounds += 2000
        ctx.progress(int(elapsed * 100 / seconds) if seconds else 100, f"{rounds:,} hashes")
    return {"rounds": rounds, "digest": digest.hex()[:16]}


@job()
def diag_fail(message: Annotated[str, Field(max_length=200)] = "failed on purpose") -> None:
    """Diagnostics: a job that always fails, to check error reporting and notifications."""
    raise RuntimeError(message)


@job(queue="secrets", idempotent=True)
def secrets_scan_url(url: Annotated[str, Field(max_length=2048), AfterValidator(check_url)]) -> dict:
    """Fetch a web target's JavaScript (scripts, chunks, source maps), scan it for secrets, store the findings."""
    return scan_url(url)


@job(name=scans.TASK, queue="scans", idempotent=True)
def recon_scan(scan_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]) -> dict:
    """A recon scan (discover, resolve, ports, http, js) of the scan row `scan_id`, then what changed."""
    return watch.scan_and_compare(scan_id)


@job(retries=3, retry_backoff=0.5, time_limit=60)
def diag_flaky(
    key: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")] = "flaky",
    fail_times: Annotated[int, Field(ge=0, le=10)] = 2,
) -> dict:
    """Diagnostics: fails with a transient error `fail_times` times (counted per key), then succeeds."""
    counter = get_settings().data_dir / "diag" / f"{key}.count"
    counter.parent.mkdir(parents=True, exist_ok=True)
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls <= fail_times:
        raise TransientError(f"simulated outage {calls} of {fail_times}")
    return {"calls": calls}


@job(name=retention.JOB, queue="default", idempotent=True)
def retention_cleanup() -> dict:
    """Delete finished jobs, old scans and closed deliveries past their RETENTION_* days, and their Celery results."""
    return retention.prune()
