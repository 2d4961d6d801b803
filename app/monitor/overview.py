"""What the dashboard shows: counts, the latest events, the jobs at work and the latest scans.

Every number is a COUNT in the database (never rows loaded into Python), and every list selects only
the columns it shows: a scan's result document can be megabytes and is never read here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func
from sqlmodel import col, select

from app.db import session_scope
from app.models import Event, Job, JobStatus, Observation, Scan, SecretFinding, SecretTriage, Target, iso

# Observation kinds counted on the dashboard, and the name each count has there.
COUNTED_KINDS = {"subdomain": "subdomains", "service": "services", "port": "ports"}
ACTIVE_STATES = (JobStatus.running.value, JobStatus.queued.value)


def counts() -> dict[str, int]:
    """{targets, subdomains, services, ports, secrets, secrets_critical, secrets_high}: what is there now.

    Subdomains, services and ports are the observations still present (a thing a scan has stopped
    seeing is gone); secrets are the findings nobody has triaged (false positive or resolved)."""
    with session_scope() as session:
        targets = session.exec(select(func.count()).select_from(Target)).one()
        # Ranges of the (target_id, kind, present, ...) index, per target: the count never reads a row,
        # however large the observations' values (about 10 ms for 60,000 ports and names).
        per_kind = session.exec(
            select(Observation.kind, func.count())
            .where(col(Observation.target_id).in_(select(Target.id)))
            .where(col(Observation.kind).in_(list(COUNTED_KINDS)), col(Observation.present).is_(True))
            .group_by(Observation.kind)
        ).all()
        untriaged = (
            ~select(SecretTriage.fingerprint).where(SecretTriage.fingerprint == SecretFinding.fingerprint).exists()
        )
        secrets, critical, high = session.exec(
            select(
                func.count(),
                func.coalesce(func.sum(case((SecretFinding.severity == "critical", 1), else_=0)), 0),
                func.coalesce(func.sum(case((SecretFinding.severity == "high", 1), else_=0)), 0),
            ).where(untriaged)
        ).one()
    found = dict(per_kind)
    result = {"targets": int(targets)}
    result |= {name: int(found.get(kind, 0)) for kind, name in COUNTED_KINDS.items()}
    result |= {"secrets": int(secrets), "secrets_critical": int(critical), "secrets_high": int(high)}
    return result


def recent_events(limit: int = 15) -> list[dict[str, Any]]:
    """The latest events, newest first, with their target's name."""
    query = (
        select(Event.id, Event.target_id, Target.name, Event.scan_id, Event.type, Event.severity, Event.summary)
        .add_columns(Event.created_at)
        .outerjoin(Target, col(Target.id) == col(Event.target_id))
        .order_by(col(Event.created_at).desc(), col(Event.id).desc())
        .limit(limit)
    )
    with session_scope() as session:
        rows = session.exec(query).all()
    return [
        {
            "id": event_id,
            "target_id": target_id,
            "target": target,
            "scan_id": scan_id,
            "type": kind,
            "severity": severity,
            "summary": summary,
            "created_at": iso(created_at),
        }
        for event_id, target_id, target, scan_id, kind, severity, summary, created_at in rows
    ]


def active_jobs(limit: int = 20) -> list[dict[str, Any]]:
    """Running jobs, then queued ones, oldest first within each; a scan's job names its scan."""
    running_first = case((Job.status == JobStatus.running.value, 0), else_=1)
    query = (
        select(Job.id, Job.name, Job.queue, Job.backend, Job.status, Job.progress, Job.message)
        .add_columns(Job.cancel_requested, Job.created_at, Job.started_at, Scan.id, Scan.target)
        .outerjoin(Scan, col(Scan.job_id) == col(Job.id))
        .where(col(Job.status).in_(ACTIVE_STATES))
        .order_by(running_first, col(Job.created_at))
        .limit(limit)
    )
    with session_scope() as session:
        rows = session.exec(query).all()
    return [
        {
            "job_id": job_id,
            "name": name,
            "queue": queue,
            "backend": backend,
            "status": status,
            "progress": progress,
            "message": message,
            "cancel_requested": cancel_requested,
            "created_at": iso(created_at),
            "started_at": iso(started_at),
            "scan_id": scan_id,
            "target": target,
        }
        for (
            job_id,
            name,
            queue,
            backend,
            status,
            progress,
            message,
            cancel_requested,
            created_at,
            started_at,
            scan_id,
            target,
        ) in rows
    ]


def recent_scans(limit: int = 8) -> list[dict[str, Any]]:
    """The latest scans with their job's state, without their result documents."""
    query = (
        select(Scan.id, Scan.target, Scan.target_id, Scan.stage, Scan.counts, Scan.created_at, Scan.finished_at)
        .add_columns(Job.status, Job.progress, Job.message, Job.error)
        .outerjoin(Job, col(Job.id) == col(Scan.job_id))
        .order_by(col(Scan.created_at).desc())
        .limit(limit)
    )
    with session_scope() as session:
        rows = session.exec(query).all()
    return [
        {
            "scan_id": scan_id,
            "target": target,
            "target_id": target_id,
            "stage": stage,
            "counts": scan_counts or {},
            "created_at": iso(created_at),
            "finished_at": iso(finished_at),
            "status": status or "failed",  # a scan whose job is gone cannot be running
            "progress": progress or 0,
            "message": (error or message) if status else "its job is gone",
        }
        for (
            scan_id,
            target,
            target_id,
            stage,
            scan_counts,
            created_at,
            finished_at,
            status,
            progress,
            message,
            error,
        ) in rows
    ]


def summary() -> dict[str, Any]:
    """Everything the dashboard shows, in one call."""
    return {"counts": counts(), "events": recent_events(), "jobs": active_jobs(), "scans": recent_scans()}
