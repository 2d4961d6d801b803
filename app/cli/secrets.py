"""`assetmon secrets scan` (files and directories, here and now) and `assetmon secrets url` (a web target,
as the same job as the API)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, out
from app.cli.lazy import lazy_group
from app.errors import RuleError
from app.secrets import make_matcher, scan_paths
from app.secrets.inputs import Limits
from app.secrets.report import as_json, as_sarif, print_text

secrets_app = typer.Typer(
    help="Find leaked credentials in JavaScript, HTML, JSON and source maps.",
    no_args_is_help=True,
    # A file scan (in CI, on every build) starts without the job and database layers the others need.
    cls=lazy_group(
        {
            "url": "app.cli.secrets_stored:url_app",
            "rotate-key": "app.cli.secrets_stored:rotate_app",
            "new-key": "app.cli.secrets_stored:new_key_app",
        }
    ),
)


class OutputFormat(StrEnum):
    json = "json"
    text = "text"
    sarif = "sarif"


class Confidence(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


@secrets_app.command("scan")
def secrets_scan(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to scan.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="json, text or sarif")] = OutputFormat.text,
    reveal: Annotated[bool, typer.Option("--reveal", help="Show full secret values (default: redacted).")] = False,
    rules: Annotated[list[Path] | None, typer.Option("--rules", help="Extra rule file (TOML); repeatable.")] = None,
    min_confidence: Annotated[Confidence, typer.Option("--min-confidence")] = Confidence.low,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, max=64, help="Processes for big directory trees (default: CPUs).")
    ] = os.cpu_count() or 1,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Ask each credential's provider whether it works (one read-only request each)."),
    ] = False,
) -> None:
    """Scan files for secrets. Exit 0: nothing found, 1: findings, 2: error."""
    try:
        matcher = make_matcher(rules)
    except RuleError as exc:
        fail(str(exc))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:  # a typo in a CI path must fail loudly, not pass as "nothing found"
        fail("; ".join(f"{p}: no such file or directory" for p in missing))
    report = scan_paths(
        paths, matcher=matcher, limits=Limits.from_settings(), min_confidence=min_confidence.value, processes=jobs
    )
    if verify:
        from app.secrets.verify import verify_report  # the HTTP stack only when a live check is asked for

        verify_report(report.findings)
    if output is OutputFormat.json:
        sys.stdout.write(as_json(report, reveal, indent=2 if sys.stdout.isatty() else None) + "\n")
    elif output is OutputFormat.sarif:
        sys.stdout.write(as_sarif(report, matcher.ruleset, reveal) + "\n")
    else:
        print_text(report, out, reveal)
    raise typer.Exit(1 if report.findings else 0)
