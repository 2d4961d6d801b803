"""Secrets at rest: every stored secret value is sealed with Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`) under a key that is not in the database.

The key is SECRETS_KEY when set (a Fernet key: `assetmon secrets new-key` prints one), otherwise the
file DATA_DIR/secrets.key, created on first use, readable by its owner only. A copy of the database
alone shows no secret; a copy of the database and the key does, so back them up apart.

Sealed values are stored as "fernet:<token>". Values written before sealing existed are sealed in
place at start-up (`seal_stored`). `rotate` re-seals every value under a new key file.
"""

from __future__ import annotations

import logging
import os
from functools import cache, lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlmodel import col, select

from app.db import session_scope
from app.errors import SealError
from app.models import SecretFinding
from app.settings import get_settings

PREFIX = "fernet:"
KEY_FILE = "secrets.key"
log = logging.getLogger("assetmon.secrets")


def key_path() -> Path:
    return get_settings().data_dir / KEY_FILE


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise SealError(f"cannot read the secrets key {path}: {exc.strerror or exc}") from None


def _write_key_file(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fernet(key: bytes, where: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:
        raise SealError(
            f"{where} is not a Fernet key (32 bytes, url-safe base64); `assetmon secrets new-key` makes one"
        ) from None


def _keys() -> MultiFernet:
    """The key: SECRETS_KEY, or the key file (made on first use), with the next key while a rotation
    runs. Read again whenever the files change, so a rotation by the CLI reaches a running web server."""
    configured = get_settings().secrets_key
    if configured:
        return _from_setting(configured)
    path = key_path()
    if not path.exists():
        _write_key_file(path, Fernet.generate_key())
        log.warning("created the secrets key %s: back it up apart from the database", path)
    return _from_files(path, _stamp(path), _stamp(_rotating(path)))


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _rotating(path: Path) -> Path:
    return path.with_name(KEY_FILE + ".rotating")


@cache
def _from_setting(key: str) -> MultiFernet:
    return MultiFernet([_fernet(key.encode(), "SECRETS_KEY")])


@lru_cache(maxsize=4)
def _from_files(path: Path, stamp: int | None, rotating: int | None) -> MultiFernet:
    keys = [_fernet(_read_key_file(path), str(path))]
    if rotating is not None:
        keys.insert(0, _fernet(_read_key_file(_rotating(path)), str(_rotating(path))))
    return MultiFernet(keys)


def forget_keys() -> None:
    _from_setting.cache_clear()
    _from_files.cache_clear()


def seal(value: str) -> str:
    return PREFIX + _keys().encrypt(value.encode()).decode()


def unseal(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # stored before sealing existed; seal_stored() seals it at the next start
    try:
        return _keys().decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except InvalidToken:
        raise SealError(
            "this secret was sealed with another key than the one configured (SECRETS_KEY or "
            f"{key_path()}): restore that key to reveal it"
        ) from None


def seal_stored(batch: int = 500) -> int:
    """Seal the values stored in clear (by an older version); returns how many."""
    done = 0
    while True:
        with session_scope() as session:
            rows = session.exec(
                select(SecretFinding).where(col(SecretFinding.value).not_like(PREFIX + "%")).limit(batch)
            ).all()
            for row in rows:
                row.value = seal(row.value)
                session.add(row)
        done += len(rows)
        if len(rows) < batch:
            return done


def rotate(batch: int = 500) -> int:
    """A new key file, and every stored value re-sealed under it; returns how many values.

    The old key stays readable until every row is re-sealed, so an interrupted rotation can be run
    again. Not possible while SECRETS_KEY is set (the key is in the environment, not ours to rewrite)."""
    if get_settings().secrets_key:
        raise SealError("SECRETS_KEY is set: put a new key in it by hand, or unset it to use the key file")
    path = key_path()
    _keys()  # makes the key file if there is none yet
    pending = _rotating(path)
    if not pending.exists():  # else: an interrupted rotation, resumed with its key
        _write_key_file(pending, Fernet.generate_key())
    both = _from_files(path, _stamp(path), _stamp(pending))  # the new key first: it seals
    done, last_id = 0, 0
    while True:
        with session_scope() as session:
            query = select(SecretFinding).where(col(SecretFinding.id) > last_id)
            rows = session.exec(query.order_by(col(SecretFinding.id)).limit(batch)).all()
            for row in rows:
                row.value = PREFIX + both.rotate(_token(both, row.value)).decode()
                session.add(row)
                last_id = row.id or last_id
        done += len(rows)
        if len(rows) < batch:
            break
    os.replace(pending, path)
    forget_keys()
    return done


def _token(keys: MultiFernet, stored: str) -> bytes:
    """The Fernet token of a stored value (one stored in clear is sealed first)."""
    return stored.removeprefix(PREFIX).encode() if stored.startswith(PREFIX) else keys.encrypt(stored.encode())


def new_key() -> str:
    return Fernet.generate_key().decode()
