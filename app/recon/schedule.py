"""A target's schedule, as data: {"every_seconds": N} or {"cron": "m h dom mon dow"}, validated, and the
next time it is due. Firing due runs is the monitor's work (app/monitor/scheduler.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from app.errors import ScheduleError
from app.models import aware, utcnow
from app.settings import get_settings

MAX_EVERY_SECONDS = 366 * 86400  # a year: a longer interval is no monitoring, and far dates overflow


def check(schedule: Any, min_seconds: int | None = None) -> dict[str, Any] | None:
    """{"every_seconds": N} or {"cron": "m h dom mon dow"}; None clears the schedule."""
    if schedule is None:
        return None
    if min_seconds is None:
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
    return croniter(schedule["cron"], after).get_next(datetime).astimezone(UTC)
