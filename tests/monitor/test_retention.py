"""Retention: old rows go, everything still needed stays, Celery results in Redis go with their jobs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlmodel import select

from app.db import session_scope
from app.models import Channel, Delivery, DeliveryAttempt, Event, Job, Scan
from app.monitor.retention import due, prune

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def add_job(
    status: str,
    *,
    finished: float | None = None,
    created: float | None = None,
    runs: int = 1,
    started: bool = True,
    name: str = "diag_sleep",
) -> str:
    """A job row with times in days before NOW (`started=False`: it never ran, e.g. cancelled while queued)."""
    job_id = uuid.uuid4().hex
    created_at = days_ago(created if created is not None else (finished or 0) + 0.01)
    finished_at = days_ago(finished) if finished is not None else None
    started_at = created_at if started and status != "queued" else None
    with session_scope() as session:
        session.add(
            Job(
                id=job_id,
                name=name,
                status=status,
                runs=runs,
                created_at=created_at,
                started_at=started_at,
                finished_at=finished_at,
            )
        )
    return job_id


def add_scan(created: float, job_id: str | None) -> str:
    scan_id = uuid.uuid4().hex
    with session_scope() as session:
        session.add(Scan(id=scan_id, target="example.test", job_id=job_id, created_at=days_ago(created)))
    return scan_id


def add_delivery(channel_id: int, status: str, updated: float, attempts: int = 0) -> int:
    with session_scope() as session:
        event = Event(type="host_new", summary="new host", created_at=days_ago(updated + 1))
        session.add(event)
        session.flush()
        delivery = Delivery(
            channel_id=channel_id,
            event_id=event.id,
            status=status,
            attempts=attempts,
            created_at=days_ago(updated + 1),
            updated_at=days_ago(updated),
        )
        session.add(delivery)
        session.flush()
        for n in range(attempts):
            session.add(DeliveryAttempt(delivery_id=delivery.id, attempt=n + 1, ok=status == "sent"))
        return delivery.id


def ids(model) -> set:
    with session_scope() as session:
        return set(session.exec(select(model.id)).all())


def test_prune_deletes_exactly_what_is_past_retention(settings_env):
    # jobs (RETENTION_JOB_DAYS=30)
    old_succeeded = add_job("succeeded", finished=40)
    old_failed = add_job("failed", finished=31)
    old_cancelled_while_queued = add_job("cancelled", finished=35, started=False)
    recent = add_job("succeeded", finished=10)
    nearly_old = add_job("failed", finished=29.9)
    old_running = add_job("running", created=100)
    old_queued = add_job("queued", created=100)
    # scans (RETENTION_SCAN_DAYS=90): a scan's status is its job's, so a kept scan keeps its job
    kept_scan_job = add_job("succeeded", finished=60)
    kept_scan = add_scan(60, kept_scan_job)
    old_scan_job = add_job("succeeded", finished=100)
    old_scan = add_scan(100, old_scan_job)
    running_scan_job = add_job("running", created=95)
    running_scan = add_scan(95, running_scan_job)
    old_scan_without_job = add_scan(120, None)
    old_scan_job_gone = add_scan(120, uuid.uuid4().hex)
    # deliveries (RETENTION_DELIVERY_DAYS=30): only closed ones (sent, failed) go, with their attempts
    with session_scope() as session:
        channel = Channel(kind="webhook", url="http://127.0.0.1:9/hook")
        session.add(channel)
        session.flush()
        channel_id = channel.id
    old_sent = add_delivery(channel_id, "sent", 40, attempts=1)
    old_failed_delivery = add_delivery(channel_id, "failed", 31, attempts=3)
    old_pending = add_delivery(channel_id, "pending", 40, attempts=2)
    recent_sent = add_delivery(channel_id, "sent", 5, attempts=1)

    counts = prune(now=NOW)

    assert counts == {"scans": 3, "jobs": 4, "deliveries": 2, "delivery_attempts": 4, "celery_results": 0}
    assert ids(Job) == {recent, nearly_old, old_running, old_queued, kept_scan_job, running_scan_job}
    assert not {old_succeeded, old_failed, old_cancelled_while_queued, old_scan_job} & ids(Job)
    assert ids(Scan) == {kept_scan, running_scan}
    assert not {old_scan, old_scan_without_job, old_scan_job_gone} & ids(Scan)
    assert ids(Delivery) == {old_pending, recent_sent}
    assert not {old_sent, old_failed_delivery} & ids(Delivery)
    with session_scope() as session:
        left = session.exec(select(DeliveryAttempt.delivery_id)).all()
    assert sorted(left) == sorted([old_pending] * 2 + [recent_sent])
    assert len(ids(Event)) == 4  # events are the timeline; retention leaves them

    # Nothing more to do a second time. 29 days later the scan (89 days old) still keeps its job;
    # a day after that, both go.
    assert not any(prune(now=NOW).values())
    later = prune(now=NOW + timedelta(days=29))
    assert later["jobs"] == 2 and later["scans"] == 0  # `recent` and `nearly_old`
    assert kept_scan_job in ids(Job) and kept_scan in ids(Scan)
    assert prune(now=NOW + timedelta(days=30, hours=1)) == {
        "scans": 1,
        "jobs": 1,
        "deliveries": 0,
        "delivery_attempts": 0,
        "celery_results": 0,
    }
    assert ids(Scan) == {running_scan}


def test_prune_works_in_small_batches_and_follows_the_settings(settings_env, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("RETENTION_JOB_DAYS", "3")
    get_settings.cache_clear()
    old = {add_job("succeeded", finished=4 + n) for n in range(7)}
    young = add_job("succeeded", finished=2)
    naive_now = NOW.replace(tzinfo=None)  # taken as UTC
    assert prune(now=naive_now, batch_size=2)["jobs"] == 7
    assert ids(Job) == {young}
    assert not old & ids(Job)


def test_prune_forgets_celery_results_in_redis(settings_env, redis_server, monkeypatch):
    from app.jobs import broker
    from app.settings import get_settings

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    get_settings.cache_clear()
    broker.invalidate()
    client = redis.Redis.from_url(redis_server.url)

    old = add_job("succeeded", finished=40, runs=2)  # requeued once: two Celery task ids
    old_scan_job = add_job("failed", finished=100)
    add_scan(100, old_scan_job)
    kept = add_job("succeeded", finished=1)
    keys = {
        job_id: [f"celery-task-meta-{job_id}.{run}" for run in range(1, runs + 1)]
        for job_id, runs in ((old, 2), (old_scan_job, 1), (kept, 1))
    }
    for job_keys in keys.values():
        for key in job_keys:
            client.set(key, '{"status": "SUCCESS"}', ex=3600)

    counts = prune(now=NOW)

    assert counts["jobs"] == 2 and counts["scans"] == 1 and counts["celery_results"] == 3
    assert client.exists(*keys[old], *keys[old_scan_job]) == 0
    assert client.exists(*keys[kept]) == 1


@pytest.mark.parametrize("status", ["queued", "running"])
def test_unfinished_jobs_are_never_pruned(settings_env, status):
    job_id = add_job(status, created=1000)
    add_scan(1000, job_id)
    assert not any(prune(now=NOW).values())
    assert job_id in ids(Job)


def test_a_clean_up_is_due_once_per_interval(settings_env):
    hour = 1 / 24  # RETENTION_INTERVAL_SECONDS=3600
    assert not due(now=NOW)  # a fresh database: nothing to prune, no clean-up job on the first tick
    add_job("succeeded", finished=2 * hour, name="diag_sleep")  # something older than the interval
    assert due(now=NOW)
    add_job("succeeded", finished=2 * hour, name="retention_cleanup")
    assert due(now=NOW)
    add_job("succeeded", finished=0.5 * hour, name="retention_cleanup")
    assert not due(now=NOW)  # one ran half an hour ago
    assert due(now=NOW + timedelta(hours=1))
    add_job("running", created=5 * hour, name="retention_cleanup")
    assert not due(now=NOW + timedelta(hours=1))  # one is still running
