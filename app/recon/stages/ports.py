"""Open TCP ports on every address in scope, with our own connect scanner. A big scan is cut into slices
(hosts x port ranges) that every worker on the scan's queue can run (app/jobs/slices.py)."""

from __future__ import annotations

from typing import Any

from app.errors import PortSpecError, ScanError
from app.jobs import slices
from app.recon.stage import Option, Progress, ScanRun, Stage
from app.scanners import ports
from app.scanners.portspec import parse_ports


def check_ports(spec: Any) -> str:
    if not isinstance(spec, str):
        raise ScanError('\'ports\' must be a port spec string such as "80,443,8000-8100" or "top100"')
    try:
        parse_ports(spec)
    except PortSpecError as exc:
        raise ScanError(f"ports: {exc}") from None
    return spec


async def run(scan: ScanRun) -> None:
    state = scan.state
    wanted = parse_ports(scan.options.get("ports") or scan.settings.default_ports)
    hosts = state.hosts()
    state.scanned_ports = set(wanted)
    report = scan.reporter(lambda done, total: f"Scanning ports: {done:,} of {total:,} probes on {len(hosts):,} hosts")
    scan.say(f"Scanning {len(wanted):,} ports on {len(hosts):,} hosts")
    scan.log(f"Scanning {len(wanted):,} ports on {len(hosts):,} hosts")
    if hosts:
        parts = port_slices(hosts, wanted, scan.settings.scan_chunk_probes)
        found = merge_ports(await slices.run_all(STAGE.name, parts, progress=report))
        state.open_ports = {host: found.get(host, []) for host in hosts}


async def run_slice(payload: dict[str, Any], progress: Progress | None) -> dict[str, list[int]]:
    return await ports.scan(payload["hosts"], payload["ports"], progress=progress)


def port_slices(hosts: list[str], wanted: list[int], probes: int) -> list[tuple[dict[str, Any], int]]:
    """hosts x ports in slices of at most `probes` probes: port blocks first, then groups of hosts."""
    if not hosts or not wanted:
        return []
    block = min(len(wanted), probes)
    per_slice = max(1, probes // block)
    parts = []
    for start in range(0, len(hosts), per_slice):
        group = hosts[start : start + per_slice]
        for offset in range(0, len(wanted), block):
            part = wanted[offset : offset + block]
            parts.append(({"hosts": group, "ports": part}, len(group) * len(part)))
    return parts


def merge_ports(results: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    merged: dict[str, set[int]] = {}
    for result in results:
        for host, found in result.items():
            merged.setdefault(host, set()).update(found)
    return {host: sorted(found) for host, found in merged.items()}


def summary(scan: ScanRun) -> str:
    found = scan.state.open_ports.values()
    return f"Ports: {sum(len(p) for p in found):,} open on {sum(1 for p in found if p):,} hosts"


STAGE = Stage(
    name="ports",
    module="ports",
    help="our own TCP connect scanner: 80,443,8000-8100, top100, top1000, 1-65535; rate-limited",
    after=("resolve",),
    weight=30,
    options={"ports": Option(check_ports, 'the ports to scan, e.g. "80,443,8000-8100" or "top1000"')},
    run=run,
    summary=summary,
    slice=run_slice,
)
