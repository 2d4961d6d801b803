"""`assetmon db upgrade`: create the database, or migrate it to the newest schema."""

from __future__ import annotations

import typer

from app.cli.common import fail, out
from app.db import migrate
from app.errors import DatabaseError

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to the newest schema."""
    try:
        migrate()
    except DatabaseError as exc:
        fail(str(exc))
    out.print("database is up to date")
