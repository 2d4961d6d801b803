"""Scheduled rescans. The schedule lives on the target row; whoever ticks fires it.

With Redis up, Celery beat ticks (`assetmon.scheduler_tick`, every SCHEDULER_TICK_SECONDS); in
fallback mode the web process does. Any number of tickers is safe: a due run is claimed with a
conditional UPDATE of `next_run_at`, so exactly one of them fires it, and `scans.create` refuses
a second scan of a target that has one queued or running. A run missed while nothing ticked
(everything down) fires once when ticking resumes, not once per missed slot.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from app.db import session_scope
from app.models import Target, aware, iso, utcnow

log = logging.getLogger("assetmon.schedules")

MAX_EVERY_SECONDS = 366 * 86400  # a year: a longer interval is no monitoring, and far dates overflow


class ScheduleError(ValueError):
    status_code = 422


def check(schedule: Any, min_seconds: int | None = None) -> dict[str, Any] | None:
    """{"every_seconds": N} or {"cron": "m h dom mon dow"}; None clears the schedule."""
    if schedule is None:
        return None
    if min_seconds is None:
        from app.settings import get_settings

        min_seconds = get_settings().min_schedule_seconds
    if not isinstance(schedule, dict) or len(schedule) != 1 or set(schedule) - {"every_seconds", "cron"}:
        raise ScheduleError('a schedule is {"every_seconds": N} or {"cron": "*/30 * * * *"}')
    if "every_seconds" in schedule:
        every = schedule["every_seconds"]
        if isinstance(every, bool) or not isinstance(every, int):
            raise ScheduleError("every_seconds must be a whole number of seconds")
        if every < min_seconds:
            raise ScheduleError(f"every_seconds must be at least {min_seconds} (MIN_SCHEDULE_SECONDS)")
        if every > MAX_EVERY_SECONDS:
            raise ScheduleError(f"every_seconds must be at most {MAX_EVERY_SECONDS} (a year)")
        return {"every_seconds": every}
    expression = schedule["cron"]
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression) or len(expression.split()) != 5:
        raise ScheduleError(f"{expression!r} is not a cron expression (five fields: minute hour day month weekday)")
    try:
        times = croniter(expression, datetime(2026, 1, 1, tzinfo=UTC))
        fires = [times.get_next(datetime) for _ in range(50)]
    except (ValueError, OverflowError):  # croniter's errors are ValueErrors: e.g. "0 0 30 2 *" has no date
        raise ScheduleError(f"{expression!r} never fires (no date matches it)") from None
    shortest = min((b - a).total_seconds() for a, b in zip(fires, fires[1:], strict=False))
    if shortest < min_seconds:
        raise ScheduleError(f"{expression!r} fires every {shortest:.0f} s; the minimum is {min_seconds} s")
    return {"cron": expression}


def next_run(schedule: dict[str, Any], after: datetime) -> datetime:
    after = aware(after) if after else utcnow()
    if "every_seconds" in schedule:
        return after + timedelta(seconds=schedule["every_seconds"])
    from croniter import croniter

    return croniter(schedule["cron"], after).get_next(datetime).astimezone(UTC)


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
    from app import scans

    started = []
    for target in claim_due(now):
        try:
            scan = scans.create(str(target.id), source="schedule")
        except scans.ScanBusy as exc:
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
            from app.targets import TargetNotFound

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
    from app import dispatch, retention

    if retention.due():
        result["retention_job"] = dispatch.submit("retention_cleanup").id
    try:
        from app.notify import outbox
    except ImportError:  # notifications not installed in this build
        return result
    result["notifications"] = outbox.deliver_due(now=now)
    return result
