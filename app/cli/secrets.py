"""`assetmon secrets scan` (files and directories, here and now) and `assetmon secrets url` (a web target,
as the same job as the API)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from app.cli.common import fail, out, prepare_db, print_json
from app.errors import InvalidArguments, JobFailed, RuleError, SealError
from app.jobs import JobHandle, submit
from app.secrets import make_matcher, scan_paths, sealing, webscan
from app.secrets.inputs import Limits
from app.secrets.report import as_json, as_sarif, print_text
from app.secrets.verify import verify_report

secrets_app = typer.Typer(
    help="Find leaked credentials in JavaScript, HTML, JSON and source maps.", no_args_is_help=True
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
        verify_report(report.findings)
    if output is OutputFormat.json:
        sys.stdout.write(as_json(report, reveal, indent=2 if sys.stdout.isatty() else None) + "\n")
    elif output is OutputFormat.sarif:
        sys.stdout.write(as_sarif(report, matcher.ruleset, reveal) + "\n")
    else:
        print_text(report, out, reveal)
    raise typer.Exit(1 if report.findings else 0)


@secrets_app.command("url")
def secrets_url(
    url: Annotated[str, typer.Argument(help="The page whose JavaScript is fetched and scanned.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="json or text")] = OutputFormat.text,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the result (default) or just queue.")] = True,
) -> None:
    """Scan a web target's JavaScript (same-site scripts, chunks, source maps) as a job; findings are stored.

    Exit 0: nothing found, 1: findings, 2: error (bad URL, job failed)."""
    if output is OutputFormat.sarif:
        fail("--format sarif is for file scans; use json or text here")
    prepare_db()
    try:
        job = submit(webscan.JOB, {"url": url})
    except InvalidArguments as exc:
        fail(str(exc).removeprefix(f"invalid arguments for {webscan.JOB}: url: "))
    if not wait:
        out.print(f"job {job.id} queued on {job.backend} (assetmon jobs show {job.id})", highlight=False)
        return
    try:
        result = JobHandle(job.id).get(timeout=None)
    except JobFailed as exc:
        fail(str(exc))
    if output is OutputFormat.json:
        print_json({"job_id": job.id, **result})
    else:
        _print_url_result(result)
    raise typer.Exit(1 if result["findings"] else 0)


def _print_url_result(result: dict[str, Any]) -> None:
    table = Table(title=f"secrets in the JavaScript of {escape(result['url'])}", title_justify="left")
    for column in ("severity", "rule", "where", "secret"):
        table.add_column(column)
    for f in result["findings"]:
        where = f"{f['url']}:{f['line']}:{f['column']}" + (
            f" ({f['source']}:{f['source_line']})" if f.get("source") else ""
        )
        table.add_row(f["severity"], f["rule"], escape(where), escape(f["secret"]))
    if result["findings"]:
        out.print(table)
    for item in result["files"]:
        if item.get("skipped"):
            out.print(f"[dim]skipped {escape(item['url'])}: {escape(item['skipped'])}[/]")
    for warning in result["warnings"]:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    out.print(
        f"{len(result['findings'])} finding(s), {result.get('new_findings', 0)} new, in {result['files_scanned']} "
        f"file(s) ({result['bytes_scanned'] / (1 << 20):.1f} MiB, {result['seconds']:.1f} s); "
        f"{len(result['endpoints'])} endpoint(s) referenced · secrets redacted (reveal them in the web UI)",
        highlight=False,
    )


@secrets_app.command("rotate-key")
def secrets_rotate_key() -> None:
    """Seal every stored secret value under a new key (DATA_DIR/secrets.key). Safe to run again if it
    was interrupted; running web servers and workers pick the new key up by themselves."""
    prepare_db()
    try:
        count = sealing.rotate()
    except SealError as exc:
        fail(str(exc))
    out.print(f"{count:,} stored secret(s) sealed under a new key in {sealing.key_path()}; back it up", highlight=False)


@secrets_app.command("new-key")
def secrets_new_key() -> None:
    """Print a new key for SECRETS_KEY (for a deployment that keeps the key out of the data directory)."""
    sys.stdout.write(sealing.new_key() + "\n")
