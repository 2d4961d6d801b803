"""Scheduled rescans, and the periodic tick that fires them. The schedule lives on the target row
(its spec: app/recon/schedule.py); whoever ticks fires it.

With Redis up, Celery beat ticks (`assetmon.scheduler_tick`, every SCHEDULER_TICK_SECONDS, see
app/worker.py); in fallback mode the web process does. Any number of tickers is safe: a due run is claimed with a
conditional UPDATE of `next_run_at`, so exactly one of them fires it, and `scans.create` refuses
a second scan of a target that has one queued or running. A run missed while nothing ticked
(everything down) fires once when ticking resumes, not once per missed slot.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from app.db import session_scope
from app.errors import ScanBusy, TargetNotFound
from app.jobs import dispatch
from app.models import Target, aware, iso, utcnow
from app.monitor import retention
from app.monitor.notify import outbox
from app.recon import scans
from app.recon.schedule import check, next_run

log = logging.getLogger("assetmon.schedules")


def claim_due(now: datetime | None = None, limit: int = 100) -> list[Target]:
    """Targets whose run is due, each claimed by this caller alone (next_run_at moved forward)."""
    now = now or utcnow()
    with session_scope() as session:
        due = session.exec(
            select(Target)
            .where(col(Target.next_run_at).is_not(None), col(Target.next_run_at) <= now)
            .order_by(col(Target.next_run_at))
            .limit(limit)
        ).all()
    claimed = []
    for target in due:
        if not target.schedule:
            continue
        following = next_run(target.schedule, now)
        with session_scope() as session:
            won = session.execute(
                update(Target)
                .where(col(Target.id) == target.id, col(Target.next_run_at) == target.next_run_at)
                .values(next_run_at=following, last_run_at=now)
            ).rowcount
        if won:
            claimed.append(target)
    return claimed


def fire_due(now: datetime | None = None) -> list[str]:
    """Start the scans that are due; returns their scan ids."""
    started = []
    for target in claim_due(now):
        try:
            scan, _ = scans.create(str(target.id), source="schedule")
        except ScanBusy as exc:
            log.info("scheduled run of %s skipped: %s", target.name, exc)
            continue
        except Exception:
            log.exception("scheduled run of %s could not start", target.name)
            continue
        log.info("scheduled scan %s of %s started", scan.id, target.name)
        started.append(scan.id)
    return started


def set_schedule(target_id: int, schedule: Any, next_run_at: datetime | None = None) -> Target:
    """Change a target's schedule (None removes it); the next run is `next_run_at` or one interval from now."""
    clean = check(schedule)
    with session_scope() as session:
        target = session.get(Target, target_id)
        if target is None:
            raise TargetNotFound(target_id)
        target.schedule = clean
        if clean is None:
            target.next_run_at = None
        else:
            target.next_run_at = aware(next_run_at) if next_run_at else next_run(clean, utcnow())
        target.updated_at = utcnow()
        session.add(target)
        session.flush()
        session.refresh(target)
        return target


def upcoming(limit: int = 500) -> list[dict[str, Any]]:
    """Scheduled targets, soonest first."""
    with session_scope() as session:
        rows = session.exec(
            select(Target).where(col(Target.next_run_at).is_not(None)).order_by(col(Target.next_run_at)).limit(limit)
        ).all()
    return [
        {
            "target_id": t.id,
            "name": t.name,
            "schedule": t.schedule,
            "next_run_at": iso(t.next_run_at),
            "last_run_at": iso(t.last_run_at),
        }
        for t in rows
    ]


def tick(now: datetime | None = None) -> dict[str, Any]:
    """One round of periodic work: due scans, due notifications. Quick, and safe from many processes."""
    result: dict[str, Any] = {"scans": fire_due(now)}
    if retention.due():
        result["retention_job"] = dispatch.submit(retention.JOB).id
    result["notifications"] = outbox.deliver_due(now=now)
    return result
