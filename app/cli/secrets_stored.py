"""`assetmon secrets url` (a web target, as the same job as the API), `rotate-key` and `new-key`: the
secrets commands that use the job machinery or the database."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from app import tasks  # noqa: F401 - the job catalogue: registers the jobs this command submits
from app.cli.common import fail, out, print_json
from app.cli.secrets import OutputFormat
from app.cli.storage import prepare_db
from app.errors import InvalidArguments, JobFailed, SealError
from app.jobs import JobHandle, submit
from app.secrets import sealing, webscan

url_app = typer.Typer(add_completion=False)
rotate_app = typer.Typer(add_completion=False)
new_key_app = typer.Typer(add_completion=False)


@url_app.command("url")
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


@rotate_app.command("rotate-key")
def secrets_rotate_key() -> None:
    """Seal every stored secret value under a new key (DATA_DIR/secrets.key). Safe to run again if it
    was interrupted; running web servers and workers pick the new key up by themselves."""
    prepare_db()
    try:
        count = sealing.rotate()
    except SealError as exc:
        fail(str(exc))
    out.print(f"{count:,} stored secret(s) sealed under a new key in {sealing.key_path()}; back it up", highlight=False)


@new_key_app.command("new-key")
def secrets_new_key() -> None:
    """Print a new key for SECRETS_KEY (for a deployment that keeps the key out of the data directory)."""
    sys.stdout.write(sealing.new_key() + "\n")
