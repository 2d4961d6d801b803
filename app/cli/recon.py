"""`assetmon scan` and `assetmon ports`: recon from the command line, over the same scan job."""

from __future__ import annotations

import asyncio
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import tasks  # noqa: F401 - the job catalogue: registers the jobs this command submits
from app.cli.common import err, fail, out, print_json
from app.cli.storage import prepare_db
from app.errors import InvalidArguments, PortSpecError, ScanError, ScopeError
from app.recon import Scope, modules, scans
from app.scanners import ports as port_scanner
from app.scanners.portspec import parse_ports
from app.settings import get_settings


class ScanFormat(StrEnum):
    json = "json"
    table = "table"


def _options(resolver: list[str] | None, ct_url: str | None, ports: str | None, http_ports: str | None) -> dict:
    options: dict[str, Any] = {}
    if resolver:
        options["resolvers"] = resolver
    if ct_url:
        options["ct_url"] = ct_url
    if ports:
        options["ports"] = ports
    if http_ports:
        try:
            options["http_ports"] = [int(p) for p in http_ports.split(",") if p.strip()]
        except ValueError:
            fail(f"--http-ports must be a comma-separated list of port numbers, not {http_ports!r}")
    return options


scan_app = typer.Typer(add_completion=False)
ports_app = typer.Typer(add_completion=False)


@scan_app.command("scan")
def scan(
    target: Annotated[str, typer.Argument(help="A stored target's name or id, a domain, an IP/CIDR or a URL.")],
    modules: Annotated[
        str | None,
        typer.Option("--modules", "-m", help=f"Comma-separated: {','.join(modules())} (default: all but checks)."),
    ] = None,
    resolver: Annotated[
        list[str] | None, typer.Option("--resolver", help="DNS resolver HOST:PORT; repeatable.")
    ] = None,
    ct_url: Annotated[str | None, typer.Option("--ct-url", help="CT search URL template with {domain}.")] = None,
    ports: Annotated[str | None, typer.Option("--ports", "-p", help="e.g. 80,443,8000-8100, top100, 1-65535.")] = None,
    http_ports: Annotated[str | None, typer.Option("--http-ports", help="Comma-separated web ports to probe.")] = None,
    wait: Annotated[bool, typer.Option("--wait", "--wait-for-completion", help="Wait for the result.")] = False,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Celery queue (default: scans).")] = None,
    output: Annotated[ScanFormat, typer.Option("--format", "-f", help="json or table")] = ScanFormat.table,
) -> None:
    """Scan a target: discover subdomains, resolve, scan ports, probe web services, scan their JavaScript.

    Exit 0: queued, or (with --wait) the scan succeeded; 1: it failed or was cancelled; 2: bad input."""
    prepare_db()
    try:
        scan_row, job = scans.create(target, modules, _options(resolver, ct_url, ports, http_ports), queue=queue)
    except (ScanError, InvalidArguments) as exc:
        fail(str(exc).removeprefix(f"invalid arguments for {scans.TASK}: "))
    if not wait:
        if output is ScanFormat.json:
            print_json({"scan_id": scan_row.id, "job_id": job.id, "status": job.status, "backend": job.backend})
        else:
            out.print(f"scan {scan_row.id} queued ({job.backend}); job {job.id}", highlight=False)
            out.print(f"follow it: assetmon jobs show {scan_row.job_id}", highlight=False)
        return
    final = _follow(scan_row.id)
    if final["status"] != "succeeded":
        fail(f"scan {final['status']}: {final['message']}", code=1)
    if output is ScanFormat.json:
        print_json(final["result"])
    else:
        _print_tables(final["result"])


def _follow(scan_id: str) -> dict[str, Any]:
    """Wait for the scan's job; a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        while (data := scans.to_dict(scans.get(scan_id), with_result=False))["status"] in ("queued", "running"):
            time.sleep(0.3)
        return scans.to_dict(scans.get(scan_id))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("queued", total=100)
        while True:
            data = scans.to_dict(scans.get(scan_id), with_result=False)
            bar.update(task, completed=data["progress"], description=escape(data["message"] or data["stage"])[:80])
            if data["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
    return scans.to_dict(scans.get(scan_id))


def _print_tables(result: dict[str, Any]) -> None:
    def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
        if not rows:
            return
        t = Table(title=title, title_justify="left")
        for column in columns:
            t.add_column(column)
        for row in rows:
            t.add_row(*(escape(str(cell)) for cell in row))
        out.print(t)

    table(
        "subdomains",
        ["name", "addresses", "sources", "notes"],
        [
            [s["name"], ", ".join(s["addresses"]), ", ".join(s["sources"]), s.get("takeover", "")]
            for s in result["subdomains"]
        ],
    )
    table(
        "hosts",
        ["host", "names", "open ports"],
        [[h["host"], ", ".join(h["names"][:5]), ", ".join(map(str, h["open_ports"]))] for h in result["hosts"]],
    )
    table(
        "services",
        ["url", "status", "title", "server", "technologies"],
        [
            [
                s["url"],
                s.get("status"),
                (s.get("title") or "")[:60],
                s.get("server") or "",
                ", ".join(s.get("technologies", [])),
            ]
            for s in result["services"]
        ],
    )
    table(
        "secrets",
        ["rule", "where", "secret"],
        [[s["rule"], f"{s['url']}:{s['line']}", s["secret"]] for s in result["secrets"]],
    )
    if result["wildcards"]:
        out.print(f"wildcard zones: {escape(', '.join(result['wildcards']))}")
    for warning in result["warnings"]:
        out.print(f"[yellow]warning:[/] {escape(warning)}")


@ports_app.command("ports")
def ports_command(
    hosts: Annotated[list[str], typer.Argument(help="IP addresses or CIDRs (within the CIDR limit).")],
    ports: Annotated[str | None, typer.Option("--ports", "-p", help="e.g. 22,80,443, 8000-8100, top1000.")] = None,
    output: Annotated[ScanFormat, typer.Option("--format", "-f", help="json or table")] = ScanFormat.table,
) -> None:
    """A TCP connect scan, run here and now (no job). Exit 0 when it ran, 2 on bad input."""

    try:
        addresses = Scope.build(cidrs=hosts).addresses()
    except ScopeError as exc:
        fail(str(exc))
    try:
        wanted = parse_ports(ports or get_settings().default_ports)
    except PortSpecError as exc:
        fail(f"--ports: {exc}")
    found = asyncio.run(port_scanner.scan(addresses, wanted))
    document = {"hosts": [{"host": h, "open_ports": found.get(h, [])} for h in addresses]}
    if output is ScanFormat.json:
        print_json(document)
    else:
        table = Table("host", "open ports")
        for h in document["hosts"]:
            table.add_row(h["host"], ", ".join(map(str, h["open_ports"])) or "-")
        out.print(table)
