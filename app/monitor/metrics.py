"""Prometheus metrics, computed from the database and Redis at scrape time.

Jobs run in many processes (Celery workers, the web process's fallback pool, the CLI), so counters kept
in one process would each see a slice. The database and Redis see everything: a custom collector reads
them on every scrape, with one GROUP BY query per metric family, so a scrape stays cheap however many
rows there are.

Row counts go down when retention prunes old rows, so they are gauges even where their names end in
`_total`: alert on `delta()`, not on `rate()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy import case, extract, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.db import get_engine
from app.jobs import broker
from app.models import FINISHED_STATES, Backend, Delivery, Event, Job, JobStatus, Scan, SecretFinding
from app.settings import QUEUES

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DELIVERY_STATES = ("pending", "sending", "sent", "failed")
SEVERITIES = ("critical", "high", "medium", "low")


def _counts(conn: Connection, *columns: Any, select_from: Any = None) -> list[tuple[Any, ...]]:
    """`SELECT columns..., count(*) GROUP BY columns...`"""
    query = select(*columns, func.count()).group_by(*columns)
    if select_from is not None:
        query = query.select_from(select_from)
    return [tuple(row) for row in conn.execute(query)]


def _gauge(name: str, documentation: str, labels: list[str], rows: Iterable[tuple[Any, ...]], zeros=()) -> Metric:
    """A gauge family from (label values..., value) rows; `zeros` are label tuples always shown, at 0 if absent."""
    values: dict[tuple[str, ...], float] = {tuple(z): 0 for z in zeros}
    for *key, value in rows:
        key = tuple("" if k is None else str(k) for k in key)
        values[key] = values.get(key, 0) + value
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key in sorted(values):
        family.add_metric(list(key), values[key])
    return family


def _duration_seconds(dialect: str) -> Any:
    """finished_at - started_at in seconds, in SQL (timestamps are stored as UTC)."""
    if dialect == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    if dialect == "postgresql":
        return extract("epoch", Job.finished_at - Job.started_at)
    return None


def _job_durations(conn: Connection) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "assetmon_job_duration_seconds",
        "Run time of finished jobs (finished_at - started_at) still kept in the database, per queue and task.",
        labels=["queue", "name"],
    )
    duration = _duration_seconds(conn.dialect.name)
    if duration is None:
        log.debug("job durations are not computed on %s", conn.dialect.name)
        return family
    runs = (
        select(Job.queue.label("queue"), Job.name.label("name"), duration.label("seconds"))
        .where(
            Job.status.in_([s.value for s in FINISHED_STATES]),
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .subquery()
    )
    seconds = runs.c.seconds
    # Each bucket counts the runs <= its bound: Prometheus buckets are cumulative, so one pass fills them all.
    query = select(
        runs.c.queue,
        runs.c.name,
        func.count(),
        func.sum(case((seconds < 0, 0.0), else_=seconds)),  # clocks of two hosts may disagree a little
        *(func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS),
    ).group_by(runs.c.queue, runs.c.name)
    for queue, name, count, total, *cumulative in conn.execute(query):
        buckets = [(floatToGoString(b), int(n or 0)) for b, n in zip(DURATION_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", int(count)))
        family.add_metric([queue, name], buckets, float(total or 0.0))
    return family


def _database_metrics(conn: Connection) -> Iterator[Metric]:
    yield _gauge(
        "assetmon_jobs",
        "Job rows by state, queue and backend (celery, background = the web process's pool, eager).",
        ["state", "queue", "backend"],
        _counts(conn, Job.status, Job.queue, Job.backend),
        zeros=[(s.value, q, b.value) for s in JobStatus for q in QUEUES for b in Backend],
    )
    yield _job_durations(conn)
    scan_status = func.coalesce(Job.status, "failed").label("status")  # a scan whose job is gone shows as failed
    yield _gauge(
        "assetmon_scans_total",
        "Scan rows by status (a scan's status is its job's).",
        ["status"],
        _counts(conn, scan_status, select_from=Scan.__table__.outerjoin(Job.__table__, Job.id == Scan.job_id)),
        zeros=[(s.value,) for s in JobStatus],
    )
    yield _gauge(
        "assetmon_secret_findings_total",
        "Distinct secrets found (one per asset and secret), by severity.",
        ["severity"],
        _counts(conn, SecretFinding.severity),
        zeros=[(s,) for s in SEVERITIES],
    )
    yield _gauge("assetmon_events_total", "Change events by type.", ["type"], _counts(conn, Event.type))
    yield _gauge(
        "assetmon_notification_deliveries_total",
        "Notification deliveries (one event for one channel) by status: pending, sending, sent, failed.",
        ["status"],
        _counts(conn, Delivery.status),
        zeros=[(s,) for s in DELIVERY_STATES],
    )


def _broker_metrics() -> Iterator[Metric]:
    status = broker.status()  # cached; in the web process a monitor thread keeps it fresh
    yield GaugeMetricFamily(
        "assetmon_redis_up", "1 when Redis (the Celery broker) answers.", value=int(status.redis_ok)
    )
    yield GaugeMetricFamily(
        "assetmon_fallback_mode",
        "1 when jobs run inside the web process (Redis unreachable or no Celery worker answers), 0 in celery mode.",
        value=int(status.mode == "fallback"),
    )
    yield GaugeMetricFamily(
        "assetmon_workers", "Celery workers that answered the last ping.", value=len(status.workers)
    )
    depth = GaugeMetricFamily(
        "assetmon_queue_depth", "Messages waiting in each Celery queue in Redis.", labels=["queue"]
    )
    if status.redis_ok:
        for queue, length in broker.queue_lengths(list(QUEUES)).items():
            if length is not None:
                depth.add_metric([queue], length)
    yield depth


class AssetMonCollector:
    """Reads the metrics from Redis and the database on each scrape (no state kept between scrapes)."""

    def collect(self) -> Iterator[Metric]:
        yield from _broker_metrics()
        try:
            with get_engine().connect() as conn:
                families = list(_database_metrics(conn))
        except SQLAlchemyError as exc:
            # Still answer the scrape: the broker metrics matter most when something is wrong.
            log.warning("metrics: database query failed: %s", exc)
            yield GaugeMetricFamily("assetmon_db_up", "1 when the database answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("assetmon_db_up", "1 when the database answered this scrape.", value=1)
        yield from families


registry = CollectorRegistry(auto_describe=False)  # not describing: registering runs no query
registry.register(AssetMonCollector())


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
