"""The database, for the commands that use it (the others start without loading it)."""

from __future__ import annotations

from app.cli.common import fail
from app.db import ensure_migrated
from app.errors import DatabaseError


def prepare_db() -> None:
    try:
        ensure_migrated()
    except DatabaseError as exc:
        fail(str(exc))
