"""API tokens (Authorization: Bearer ...): shown once when created, stored as SHA-256, revocable.

`API_TOKEN` from the settings is an admin token too, for automation that is configured by file.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from sqlmodel import col, select

from app.accounts.identity import TOUCH_EVERY, token_digest
from app.accounts.users import check_role
from app.db import session_scope
from app.errors import AccountError, TokenNotFound
from app.models import ApiToken, Role, User, aware, iso, utcnow
from app.settings import get_settings

PREFIX = "am_"


def create(name: str, role: str = Role.viewer.value, user_id: int | None = None) -> tuple[dict[str, Any], str]:
    """A new token; returns its description and the token itself (shown once, never stored)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise AccountError("name: 1-100 characters")
    role = check_role(role)
    token = PREFIX + secrets.token_urlsafe(32)
    with session_scope() as session:
        row = ApiToken(name=name, token_hash=token_digest(token), prefix=token[:10], role=role, user_id=user_id)
        session.add(row)
        session.flush()
        return _describe(row, None), token


def _describe(row: ApiToken, owner: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "owner": owner,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked": row.revoked_at is not None,
    }


def list_tokens(include_revoked: bool = False) -> list[dict[str, Any]]:
    with session_scope() as session:
        query = select(ApiToken, User.username).join(User, isouter=True).order_by(col(ApiToken.id).desc())
        if not include_revoked:
            query = query.where(col(ApiToken.revoked_at).is_(None))
        return [_describe(row, owner) for row, owner in session.exec(query)]


def revoke(token_id: int) -> None:
    with session_scope() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            raise TokenNotFound(f"no active API token with id {token_id}")
        row.revoked_at = utcnow()
        session.add(row)


def lookup(token: str) -> tuple[str, str] | None:
    """(name, role) for a valid token, None otherwise."""
    if not token or len(token) > 200:
        return None
    configured = get_settings().api_token
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        return "API_TOKEN", Role.admin.value
    now = utcnow()
    with session_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.last_used_at is None or now - aware(row.last_used_at) > TOUCH_EVERY:
            row.last_used_at = now
            session.add(row)
        return f"token:{row.name}", row.role
