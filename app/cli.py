"""`assetmon`: the command line, over the same functions as the web app.

Exit codes: 0 success, 1 the thing asked about is not healthy / failed, 2 bad input or an error.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from app import __version__

app = typer.Typer(help="AssetMon: self-hosted attack-surface monitor.", no_args_is_help=True, add_completion=False)
jobs_app = typer.Typer(help="Inspect and control jobs.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Find leaked credentials in JavaScript, HTML, JSON and source maps.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _prepare_db() -> None:
    from app.db import DatabaseError, ensure_migrated

    try:
        ensure_migrated()
    except DatabaseError as exc:
        _fail(str(exc))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"assetmon {__version__}")
        raise typer.Exit(0)


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    job: Annotated[bool, typer.Option("--job/--no-job", help="Also run the health_check job.")] = True,
) -> None:
    """Mode (celery or fallback), Redis, workers and database; runs health_check where jobs run."""
    from app.web.status import health as health_summary

    _prepare_db()
    summary = health_summary(max_age=0)
    if job:
        from app.jobtask import JobFailed
        from app.tasks import health_check

        try:
            summary["health_check"] = health_check.delay().get(timeout=30)
        except (JobFailed, TimeoutError) as exc:
            summary["health_check"] = {"status": "failed", "error": str(exc)}
    if as_json:
        _print_json(summary)
    else:
        colour = "green" if summary["mode"] == "celery" else "yellow"
        out.print(f"mode     [bold {colour}]{summary['mode']}[/]")
        if summary.get("reason"):
            out.print(f"         {summary['reason']}", style="yellow", highlight=False)
        out.print(f"redis    {summary['redis']}")
        out.print(f"workers  {summary['workers']}")
        out.print(f"db       {summary['db']}")
        out.print(f"version  {summary['version']}")
        if job:
            check = summary["health_check"]
            where = check.get("worker") or f"this process ({check.get('mode', '?')})"
            out.print(f"job      {check.get('status')} from {where}", highlight=False)
    ok = summary["db"] == "ok" and summary.get("health_check", {"status": "ok"}).get("status") == "ok"
    raise typer.Exit(0 if ok else 1)


def _job_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for column in ("job", "task", "queue", "backend", "state", "progress", "message", "created"):
        table.add_column(column)
    for job in rows:
        table.add_row(
            job["job_id"],
            job["name"],
            job["queue"],
            job["backend"],
            job["status"],
            f"{job['progress']}%",
            (job["error"] or job["message"] or "")[:60],
            (job["created_at"] or "")[:19].replace("T", " "),
        )
    return table


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")] = None,
    name: Annotated[str | None, typer.Option(help="Task name")] = None,
    queue: Annotated[str | None, typer.Option(help="default, scans or secrets")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List recent jobs, newest first."""
    from app import jobs
    from app.models import JobStatus
    from app.registry import QUEUES

    if status and status not in {s.value for s in JobStatus}:
        _fail(f"unknown status {status!r}; use one of {', '.join(s.value for s in JobStatus)}")
    if queue and queue not in QUEUES:
        _fail(f"unknown queue {queue!r}; use one of {', '.join(QUEUES)}")
    _prepare_db()
    rows = [jobs.to_dict(j) for j in jobs.list_jobs(status=status, name=name, limit=limit, queue=queue)]
    if as_json:
        _print_json({"jobs": rows, "count": len(rows)})
    else:
        out.print(_job_table(rows))


def _job_or_fail(action, job_id: str) -> dict[str, Any]:
    from app import jobs

    _prepare_db()
    try:
        return jobs.to_dict(action(job_id))
    except jobs.JobError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """Everything about one job, as JSON."""
    from app import jobs

    _print_json(_job_or_fail(jobs.get_job, job_id))


@jobs_app.command("status")
def jobs_status(job_id: str) -> None:
    """One line: state, progress and message (exit 0 succeeded/queued/running, 1 failed or cancelled)."""
    from app import jobs

    job = _job_or_fail(jobs.get_job, job_id)
    text = job["error"] or job["message"] or ""
    out.print(f"{job['status']} {job['progress']}% {job['name']} on {job['backend']} — {text}", highlight=False)
    if job["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str,
    terminate: Annotated[bool, typer.Option("--terminate", help="Also kill a running Celery task's process.")] = False,
) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    from app import dispatch

    job = _job_or_fail(lambda jid: dispatch.cancel(jid, terminate=terminate), job_id)
    out.print(f"job {job_id}: {job['status']} — {job['message']}", highlight=False)


@jobs_app.command("requeue")
def jobs_requeue(job_id: str) -> None:
    """Run a finished job again with the same arguments."""
    from app import dispatch

    job = _job_or_fail(dispatch.requeue, job_id)
    out.print(f"job {job_id}: {job['status']} on {job['backend']}", highlight=False)


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--arg expects NAME=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(raw)
        except ValueError:
            kwargs[key] = raw
    return kwargs


@jobs_app.command("trigger")
def jobs_trigger(
    task: str,
    arg: Annotated[list[str] | None, typer.Option("--arg", "-a", help="NAME=VALUE (JSON or text); repeatable")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish and print its result.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1)] = 300.0,
) -> None:
    """Queue a registered task (see `assetmon jobs tasks`)."""
    from app import dispatch, registry
    from app.jobtask import JobFailed, JobHandle

    kwargs = _parse_args(arg or [])
    _prepare_db()
    try:
        job = dispatch.submit(task, kwargs)
    except (registry.UnknownTask, registry.InvalidArguments) as exc:
        _fail(str(exc))
    out.print(f"job {job.id}: {job.status} on {job.backend}", highlight=False)
    if wait:
        try:
            _print_json(JobHandle(job.id).get(timeout=timeout))
        except (JobFailed, TimeoutError) as exc:
            _fail(str(exc), code=1)


@jobs_app.command("tasks")
def jobs_tasks() -> None:
    """The tasks that can be triggered."""
    from app import registry

    table = Table()
    for column in ("task", "queue", "description"):
        table.add_column(column)
    for spec in registry.all_tasks():
        table.add_row(spec.name, spec.queue, spec.description)
    out.print(table)


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
) -> None:
    """Scan files for secrets. Exit 0: nothing found, 1: findings, 2: error."""
    from app.secrets.inputs import Limits
    from app.secrets.report import as_json, as_sarif, print_text
    from app.secrets.rules import RuleError
    from app.secrets.scan import make_matcher, scan_paths

    try:
        matcher = make_matcher(rules)
    except RuleError as exc:
        _fail(str(exc))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:  # a typo in a CI path must fail loudly, not pass as "nothing found"
        _fail("; ".join(f"{p}: no such file or directory" for p in missing))
    report = scan_paths(
        paths, matcher=matcher, limits=Limits.from_settings(), min_confidence=min_confidence.value, processes=jobs
    )
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
    from app import dispatch, registry
    from app.jobtask import JobFailed, JobHandle

    if output is OutputFormat.sarif:
        _fail("--format sarif is for file scans; use json or text here")
    _prepare_db()
    try:
        job = dispatch.submit("secrets_scan_url", {"url": url})
    except registry.InvalidArguments as exc:
        _fail(str(exc).removeprefix("invalid arguments for secrets_scan_url: url: "))
    if not wait:
        out.print(f"job {job.id} queued on {job.backend} (assetmon jobs show {job.id})", highlight=False)
        return
    try:
        result = JobHandle(job.id).get(timeout=None)
    except JobFailed as exc:
        _fail(str(exc))
    if output is OutputFormat.json:
        _print_json({"job_id": job.id, **result})
    else:
        _print_url_result(result)
    raise typer.Exit(1 if result["findings"] else 0)


def _print_url_result(result: dict[str, Any]) -> None:
    from rich.markup import escape

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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database or migrate it to the newest schema."""
    from app.db import DatabaseError, migrate

    try:
        migrate()
    except DatabaseError as exc:
        _fail(str(exc))
    out.print("database is up to date")


# Commands defined in their own modules register themselves on `app` when imported.
from app import cli_recon, cli_users  # noqa: E402, F401


def main() -> None:
    from pydantic import ValidationError

    try:
        app()
    except ValidationError as exc:  # a bad value in .env or the environment
        from app.settings import describe_error

        err.print(f"[bold red]error:[/] invalid settings: {describe_error(exc)}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
