"""The audit log: who signed in, revealed a secret, triaged a finding, or changed settings and accounts."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from app.db import session_scope
from app.models import AuditLog, iso


def record(actor: str, action: str, subject: str = "", ip: str = "", **detail: Any) -> None:
    with session_scope() as session:
        session.add(AuditLog(actor=actor[:100], action=action[:50], subject=subject[:300], ip=ip[:64], detail=detail))


def recent(limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    with session_scope() as session:
        query = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit)
        if action:
            query = query.where(AuditLog.action == action)
        return [
            {
                "at": iso(row.at),
                "actor": row.actor,
                "action": row.action,
                "subject": row.subject,
                "ip": row.ip,
                "detail": row.detail,
            }
            for row in session.exec(query)
        ]
