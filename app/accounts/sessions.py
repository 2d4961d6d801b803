"""Browser sessions: a random cookie value, stored only as its SHA-256, with its own CSRF token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func
from sqlmodel import col, select

from app.accounts.identity import TOUCH_EVERY, Account, token_digest
from app.db import session_scope
from app.models import User, UserSession, aware, utcnow
from app.settings import get_settings

COOKIE = "assetmon_session"


@dataclass(frozen=True)
class Signed:
    account: Account
    csrf: str


def create(account: Account, ip: str = "", user_agent: str = "") -> str:
    """A new session for the account; returns the cookie value."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope() as session:
        session.add(
            UserSession(
                id=token_digest(token),
                user_id=account.id,
                csrf_token=secrets.token_urlsafe(32),
                ip=ip[:64],
                user_agent=user_agent[:300],
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=get_settings().session_hours),
            )
        )
    return token


def lookup(token: str | None) -> Signed | None:
    if not token or len(token) > 200:
        return None
    now = utcnow()
    with session_scope() as session:
        row = session.get(UserSession, token_digest(token))
        if row is None:
            return None
        if aware(row.expires_at) <= now:
            session.delete(row)
            return None
        user = session.get(User, row.user_id)
        if user is None:
            return None
        if now - aware(row.last_seen_at) > TOUCH_EVERY:
            row.last_seen_at = now
            session.add(row)
        return Signed(Account(user.id, user.username, user.role), row.csrf_token)  # type: ignore[arg-type]


def revoke(token: str | None) -> None:
    if token:
        with session_scope() as session:
            session.exec(delete(UserSession).where(UserSession.id == token_digest(token)))


def revoke_user(username: str) -> int:
    with session_scope() as session:
        user_ids = select(User.id).where(func.lower(User.username) == username.lower())
        result = session.exec(delete(UserSession).where(col(UserSession.user_id).in_(user_ids)))
        return result.rowcount or 0


def purge_expired() -> int:
    with session_scope() as session:
        result = session.exec(delete(UserSession).where(col(UserSession.expires_at) <= utcnow()))
        return result.rowcount or 0
