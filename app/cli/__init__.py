"""`assetmon`: the command line, over the same functions as the web app.

Exit codes: 0 success, 1 the thing asked about is not healthy / failed, 2 bad input or an error.
The commands live in one module per area (jobs, recon, secrets, users, db); what they share in common.py.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from app import __version__
from app.cli import db, jobs, recon, secrets, users
from app.cli.common import err, out
from app.settings import describe_error

app = typer.Typer(help="AssetMon: self-hosted attack-surface monitor.", no_args_is_help=True, add_completion=False)
app.command()(jobs.health)
app.command("scan")(recon.scan)
app.command("ports")(recon.ports_command)
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(db.db_app, name="db")
app.add_typer(secrets.secrets_app, name="secrets")
app.add_typer(users.users_app, name="users")
app.add_typer(users.tokens_app, name="tokens")


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"assetmon {__version__}")
        raise typer.Exit(0)


def main() -> None:
    try:
        app()
    except ValidationError as exc:  # a bad value in .env or the environment
        err.print(f"[bold red]error:[/] invalid settings: {describe_error(exc)}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
