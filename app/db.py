"""Database engine, sessions and migrations.

SQLite (the default) runs in WAL mode with a busy timeout so that the web process, the Celery
worker and fallback processes can write to it at the same time. PostgreSQL (DATABASE_URL,
psycopg 3) serves several hosts; both use the same Alembic migrations.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from app.errors import DatabaseError
from app.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(item) for item in value)
    return value


def _strip_nul(_conn, _cursor, statement, parameters, _context, _executemany):
    # PostgreSQL text cannot hold NUL characters, and scanned content (titles, scripts, certificates)
    # is hostile: a NUL must not fail the scan that stores it, so it is dropped on the way in.
    return statement, _without_nul(parameters)


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Times are stored as UTC whatever the server's own time zone is.
    connect_args = {"options": "-c timezone=UTC"} if parsed.get_backend_name() == "postgresql" else {}
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "before_cursor_execute", _strip_nul, retval=True)
    return engine


def get_engine() -> Engine:
    return _engine_for(get_settings().db_url)


def dispose_engines() -> None:
    """Drop pooled connections inherited from a parent process (after fork)."""
    if _engine_for.cache_info().currsize:
        get_engine().dispose(close=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def check_db() -> bool:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", get_settings().db_url.replace("%", "%%"))
    return config


@contextmanager
def _migration_lock() -> Iterator[None]:
    # Several processes (web, worker, CLI) may start together; only one migrates at a time.
    data_dir = get_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / ".migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def migrate() -> None:
    """Create or upgrade the schema to the newest revision (Alembic)."""
    try:
        with _migration_lock():
            command.upgrade(_alembic_config(), "head")
    except Exception as exc:
        raise DatabaseError(f"cannot prepare the database at {_redacted_db_url()}: {exc}") from exc


_migrated: set[str] = set()


def ensure_migrated() -> None:
    """Migrate once per process and database URL."""
    url = get_settings().db_url
    if url not in _migrated:
        migrate()
        _migrated.add(url)


def _redacted_db_url() -> str:
    return make_url(get_settings().db_url).render_as_string(hide_password=True)


if __name__ == "__main__":
    # `python -m app.db`: create or migrate the database, as the start scripts do before they start a
    # server (a message instead of a traceback, and without loading all of AssetMon as the CLI does).
    try:
        migrate()
    except DatabaseError as exc:
        print(f"assetmon: {exc}", file=sys.stderr)
        sys.exit(1)
