"""`assetmon`: the command line, over the same functions as the web app.

Exit codes: 0 success, 1 the thing asked about is not healthy / failed, 2 bad input or an error.
The commands live in one module per area (jobs, recon, secrets, users, db); what they share in common.py.
"""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from app import __version__
from app.cli.common import err, out
from app.cli.lazy import lazy_group
from app.settings import describe_error

# Each command's module is imported when it runs: the database, the job machinery and the scanners load
# only for the commands that use them.
COMMANDS = {
    "health": "app.cli.jobs:health_app",
    "scan": "app.cli.recon:scan_app",
    "ports": "app.cli.recon:ports_app",
    "jobs": "app.cli.jobs:jobs_app",
    "db": "app.cli.db:db_app",
    "secrets": "app.cli.secrets:secrets_app",
    "checks": "app.cli.checks:checks_app",
    "users": "app.cli.users:users_app",
    "tokens": "app.cli.users:tokens_app",
}

app = typer.Typer(
    help="AssetMon: self-hosted attack-surface monitor.",
    no_args_is_help=True,
    add_completion=False,
    cls=lazy_group(COMMANDS),
)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"assetmon {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        # Eager: it answers before a command is looked for (`assetmon --version` needs none).
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    pass


def main() -> None:
    try:
        app()
    except ValidationError as exc:  # a bad value in .env or the environment
        err.print(f"[bold red]error:[/] invalid settings: {describe_error(exc)}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    finally:
        # The interpreter's shutdown collects every object the libraries created (pydantic's schemas
        # above all): a tenth of a second per command, of a secrets scan in a CI job too. Objects moved
        # to the permanent generation are skipped by that collection; files are still flushed and
        # closed as their references go.
        gc.freeze()


if __name__ == "__main__":
    main()
