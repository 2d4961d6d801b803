"""`assetmon health` and `assetmon jobs ...`: where jobs run, and the jobs themselves."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.common import fail, out, print_json
from app.cli.storage import prepare_db
from app.errors import InvalidArguments, JobError, JobFailed, UnknownTask
from app.jobs import JobHandle, dispatch, health_summary, registry, store
from app.models import JobStatus
from app.settings import QUEUES
from app.tasks import health_check

jobs_app = typer.Typer(help="Inspect and control jobs.", no_args_is_help=True)
health_app = typer.Typer(add_completion=False)


@health_app.command("health")
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    job: Annotated[bool, typer.Option("--job/--no-job", help="Also run the health_check job.")] = True,
) -> None:
    """Mode (celery or fallback), Redis, workers and database; runs health_check where jobs run."""
    prepare_db()
    summary = health_summary(max_age=0)
    if job:
        try:
            summary["health_check"] = health_check.delay().get(timeout=30)
        except (JobFailed, TimeoutError) as exc:
            summary["health_check"] = {"status": "failed", "error": str(exc)}
    if as_json:
        print_json(summary)
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
    if status and status not in {s.value for s in JobStatus}:
        fail(f"unknown status {status!r}; use one of {', '.join(s.value for s in JobStatus)}")
    if queue and queue not in QUEUES:
        fail(f"unknown queue {queue!r}; use one of {', '.join(QUEUES)}")
    prepare_db()
    rows = [store.to_dict(j) for j in store.list_jobs(status=status, name=name, limit=limit, queue=queue)]
    if as_json:
        print_json({"jobs": rows, "count": len(rows)})
    else:
        out.print(_job_table(rows))


def _job_or_fail(action, job_id: str) -> dict[str, Any]:
    prepare_db()
    try:
        return store.to_dict(action(job_id))
    except JobError as exc:
        fail(str(exc))
    raise AssertionError("unreachable")


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """Everything about one job, as JSON."""
    print_json(_job_or_fail(store.get_job, job_id))


@jobs_app.command("status")
def jobs_status(job_id: str) -> None:
    """One line: state, progress and message (exit 0 succeeded/queued/running, 1 failed or cancelled)."""
    job = _job_or_fail(store.get_job, job_id)
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
    job = _job_or_fail(lambda jid: dispatch.cancel(jid, terminate=terminate), job_id)
    out.print(f"job {job_id}: {job['status']} — {job['message']}", highlight=False)


@jobs_app.command("requeue")
def jobs_requeue(job_id: str) -> None:
    """Run a finished job again with the same arguments."""
    job = _job_or_fail(dispatch.requeue, job_id)
    out.print(f"job {job_id}: {job['status']} on {job['backend']}", highlight=False)


def _parse_args(pairs: list[str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--arg expects NAME=VALUE, got {pair!r}")
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
    kwargs = _parse_args(arg or [])
    prepare_db()
    try:
        job = dispatch.submit(task, kwargs)
    except (UnknownTask, InvalidArguments) as exc:
        fail(str(exc))
    out.print(f"job {job.id}: {job.status} on {job.backend}", highlight=False)
    if wait:
        try:
            print_json(JobHandle(job.id).get(timeout=timeout))
        except (JobFailed, TimeoutError) as exc:
            fail(str(exc), code=1)


@jobs_app.command("tasks")
def jobs_tasks() -> None:
    """The tasks that can be triggered."""
    table = Table()
    for column in ("task", "queue", "description"):
        table.add_column(column)
    for spec in registry.all_tasks():
        table.add_row(spec.name, spec.queue, spec.description)
    out.print(table)
