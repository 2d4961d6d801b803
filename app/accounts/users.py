"""User accounts: argon2 password hashes, roles, sign-in with throttling, and the first admin."""

from __future__ import annotations

import logging
import os
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.accounts import sessions
from app.accounts.identity import Account
from app.db import session_scope
from app.errors import AccountError, LastAdmin, TooManyAttempts, UserExists, UserNotFound
from app.models import LoginFailure, Role, User, aware, iso, utcnow
from app.settings import get_settings

log = logging.getLogger("assetmon.auth")

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
ROLES = tuple(r.value for r in Role)

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified when the user name is unknown, so a wrong name costs as much time as a wrong password.
    Made on first use: hashing takes a moment, and most processes never sign anyone in."""
    return _hasher.hash(secrets.token_hex(16))


def _account(user: User) -> Account:
    assert user.id is not None
    return Account(user.id, user.username, user.role)


def check_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME.fullmatch(username):
        raise AccountError("user name: 1-64 characters, letters, digits and . _ @ - (starting with a letter or digit)")
    return username


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password: at most {MAX_PASSWORD} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role: must be one of {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def any_users() -> bool:
    with session_scope() as session:
        return session.exec(select(func.count()).select_from(User)).one() > 0


def create_user(username: str, password: str, role: str = Role.viewer.value, *, only_if_none: bool = False) -> Account:
    """Create an account. `only_if_none`: refuse unless this is the very first one (first-run set-up)."""
    username, role = check_username(username), check_role(role)
    password_hash = hash_password(check_password(password))
    try:
        with session_scope() as session:
            if only_if_none and session.exec(select(func.count()).select_from(User)).one():
                raise UserExists("the first account already exists; sign in instead")
            if session.exec(select(User).where(func.lower(User.username) == username.lower())).first():
                raise UserExists(f"user name {username!r} is taken")
            user = User(username=username, password_hash=password_hash, role=role)
            session.add(user)
            session.flush()
            return _account(user)
    except IntegrityError:
        raise UserExists(f"user name {username!r} is taken") from None


def get_user(user_id: int) -> Account | None:
    with session_scope() as session:
        user = session.get(User, user_id)
        return _account(user) if user else None


def list_users() -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.exec(select(User).order_by(col(User.username))).all()
        return [
            {
                "id": u.id,
                "username": u.username,
                "role": u.role,
                "created_at": iso(u.created_at),
                "last_login_at": iso(u.last_login_at),
            }
            for u in rows
        ]


def _find(session, username: str) -> User:
    user = session.exec(select(User).where(func.lower(User.username) == username.strip().lower())).first()
    if user is None:
        raise UserNotFound(f"no user named {username!r}")
    return user


def _admins(session) -> int:
    return session.exec(select(func.count()).select_from(User).where(User.role == Role.admin.value)).one()


def set_password(username: str, password: str) -> None:
    password_hash = hash_password(check_password(password))
    with session_scope() as session:
        user = _find(session, username)
        user.password_hash = password_hash
        session.add(user)
    sessions.revoke_user(username)  # a new password signs every browser out


def set_role(username: str, role: str) -> Account:
    role = check_role(role)
    with session_scope() as session:
        user = _find(session, username)
        if user.role == Role.admin.value and role != Role.admin.value and _admins(session) <= 1:
            raise LastAdmin("cannot demote the last admin")
        user.role = role
        session.add(user)
        return _account(user)


def delete_user(username: str) -> None:
    with session_scope() as session:
        user = _find(session, username)
        if user.role == Role.admin.value and _admins(session) <= 1:
            raise LastAdmin("cannot delete the last admin")
        session.delete(user)


def authenticate(username: str, password: str, ip: str) -> Account | None:
    """The account for a correct user name and password, None otherwise. Raises TooManyAttempts while
    this user name (from this address) or this address is locked out, even for the right password."""
    settings = get_settings()
    username = (username or "").strip()[:64]
    window_start = utcnow() - timedelta(seconds=settings.login_window_seconds)
    with session_scope() as session:
        session.exec(delete(LoginFailure).where(col(LoginFailure.at) < window_start))
        per_user = select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.ip == ip,
            func.lower(LoginFailure.username) == username.lower(),
            LoginFailure.at >= window_start,
        )
        per_ip = select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.ip == ip, LoginFailure.at >= window_start
        )
        for query, limit in ((per_user, settings.login_max_failures), (per_ip, settings.login_max_failures * 4)):
            count, oldest = session.exec(query).one()
            if count >= limit:
                retry = int((aware(oldest) - window_start).total_seconds()) + 1
                raise TooManyAttempts(retry)
        user = (
            session.exec(select(User).where(func.lower(User.username) == username.lower())).first()
            if username
            else None
        )
    ok = _verify(user.password_hash if user else _dummy_hash(), password or "") and user is not None
    with session_scope() as session:
        if not ok:
            session.add(LoginFailure(ip=ip[:64], username=username))
            return None
        assert user is not None
        session.exec(
            delete(LoginFailure).where(LoginFailure.ip == ip, func.lower(LoginFailure.username) == username.lower())
        )
        fresh = session.get(User, user.id)
        if fresh is None:
            return None
        fresh.last_login_at = utcnow()
        if _hasher.check_needs_rehash(fresh.password_hash):
            fresh.password_hash = hash_password(password)
        session.add(fresh)
        return _account(fresh)


def _verify(password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def ensure_admin_from_settings() -> Account | None:
    """ADMIN_PASSWORD in the settings creates ADMIN_USER (an admin) if that user does not exist yet."""
    settings = get_settings()
    if not settings.admin_password:
        return None
    try:
        account = create_user(settings.admin_user, settings.admin_password, Role.admin.value)
    except UserExists:
        return None
    log.warning("created admin %r from ADMIN_USER/ADMIN_PASSWORD", account.username)
    return account


# --- first run in the browser -------------------------------------------------------------------


def setup_code_path() -> Path:
    return get_settings().data_dir / "setup-code"


def setup_code() -> str:
    """The one-time code that /setup asks for from other machines, created on first use (mode 0600)."""
    path = setup_code_path()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    code = "-".join(secrets.token_hex(3) for _ in range(3))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(code + "\n")
    return code


def forget_setup_code() -> None:
    setup_code_path().unlink(missing_ok=True)
