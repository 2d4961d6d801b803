"""A job's log lines: what it did, stage by stage, in words a person reads (shown live on the scan page).

Lines are few and cheap (stages, totals, warnings; never one per name or port). A job keeps at most
MAX_LINES of them; the next append writes one "log truncated" line and every later one is dropped,
so a runaway loop cannot fill the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, literal, select
from sqlmodel import Session, col

from app.db import session_scope
from app.errors import JobLogError
from app.models import JobLog, iso, utcnow

LEVELS = ("info", "warning", "error")
MAX_LINES = 1000
MAX_MESSAGE_CHARS = 1000
TRUNCATED = "log truncated: this job wrote more than {limit} lines; later lines are not kept"


def append(job_id: str, message: str, level: str = "info", *, session: Session | None = None) -> bool:
    """Add a line to the job's log. False when the log is full (the line is dropped).

    With `session`, the line is written in that transaction (so it exists exactly when the state
    change it describes does)."""
    if level not in LEVELS:
        raise JobLogError(f"unknown log level {level!r}; levels are {', '.join(LEVELS)}")
    text = str(message)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    if session is not None:
        return _append(session, job_id, text, level)
    with session_scope() as own:
        return _append(own, job_id, text, level)


def _append(session: Session, job_id: str, message: str, level: str) -> bool:
    # One INSERT ... SELECT ... WHERE (count) < limit: the check and the write are one statement,
    # so two writers cannot both slip past the limit.
    if _insert_if(session, job_id, message, level, _count(job_id) < MAX_LINES):
        return True
    _insert_if(session, job_id, TRUNCATED.format(limit=MAX_LINES), "warning", _count(job_id) == MAX_LINES)
    return False


def _count(job_id: str) -> Any:
    return select(func.count()).select_from(JobLog).where(JobLog.job_id == job_id).scalar_subquery()


def _insert_if(session: Session, job_id: str, message: str, level: str, condition: Any) -> bool:
    table = JobLog.__table__
    values = [
        literal(job_id, type_=table.c.job_id.type),
        literal(utcnow(), type_=table.c.at.type),
        literal(level, type_=table.c.level.type),
        literal(message, type_=table.c.message.type),
    ]
    statement = insert(table).from_select(["job_id", "at", "level", "message"], select(*values).where(condition))
    # RETURNING tells whether the row went in on every database (psycopg reports no rowcount for INSERT here).
    return session.execute(statement.returning(table.c.id)).first() is not None


def lines(job_id: str, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """The job's lines after `after_id` (0: from the start), oldest first."""
    query = (
        select(JobLog)
        .where(JobLog.job_id == job_id, col(JobLog.id) > after_id)
        .order_by(col(JobLog.id))
        .limit(max(1, limit))
    )
    with session_scope() as session:
        return [line_dict(row) for row in session.scalars(query).all()]


def tail(job_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """The job's last `limit` lines, oldest first."""
    query = select(JobLog).where(JobLog.job_id == job_id).order_by(col(JobLog.id).desc()).limit(max(1, limit))
    with session_scope() as session:
        rows = session.scalars(query).all()
    return [line_dict(row) for row in reversed(rows)]


def count(job_id: str) -> int:
    with session_scope() as session:
        return int(session.execute(select(_count(job_id))).scalar_one())


def delete_for(job_ids: Iterable[str], *, session: Session | None = None) -> int:
    """Delete the log lines of these jobs (retention). Returns how many lines went."""
    ids = list(job_ids)
    if not ids:
        return 0
    statement = delete(JobLog).where(col(JobLog.job_id).in_(ids))
    if session is not None:
        return session.execute(statement).rowcount
    with session_scope() as own:
        return own.execute(statement).rowcount


def line_dict(row: JobLog) -> dict[str, Any]:
    return {"id": row.id, "at": iso(row.at), "level": row.level, "message": row.message}
