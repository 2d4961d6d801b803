"""Web services: http and https on each web port of each address in scope, asked by IP with each name's
Host header and TLS server name. Names in their certificates feed discovery back: new in-scope names are
resolved and their services probed too."""

from __future__ import annotations

from typing import Any

from app.errors import ScanError
from app.net.names import address_key
from app.recon.stage import Option, ScanRun, Stage
from app.scanners import http
from app.scanners.portspec import parse_ports

MAX_NAMES_PER_ADDRESS = 20  # HTTP probes per address and port with distinct Host headers


def check_http_ports(value: Any) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value)
    ):
        raise ScanError("'http_ports' must be a non-empty list of port numbers (1-65535)")
    return sorted(set(value))


def _probe_targets(scan: ScanRun, addresses: list[str]) -> list[http.ProbeTarget]:
    state = scan.state
    web_ports = sorted(set(scan.options.get("http_ports") or parse_ports(scan.settings.http_ports)))
    targets = []
    for address in addresses:
        names = sorted(state.addresses.get(address, ()))[:MAX_NAMES_PER_ADDRESS]
        for port in web_ports:
            # A port this scan found closed is not probed; one it did not scan is.
            if port in state.scanned_ports and port not in state.open_ports.get(address, []):
                continue
            targets += [http.ProbeTarget(address, port, name) for name in names] or [
                http.ProbeTarget(address, port, None)
            ]
    return targets


async def run(scan: ScanRun) -> None:
    state = scan.state
    targets = _probe_targets(scan, state.hosts())
    report = scan.reporter(lambda done, total: f"Probing {done:,} of {total:,} web endpoints")
    scan.say(f"Probing {len(targets):,} web endpoints")
    scan.log(f"Probing {len(targets):,} web endpoints")
    services, warnings = await http.probe(targets, progress=report)
    state.warnings += warnings
    state.services = [s.as_dict() for s in services]
    await _names_from_certificates(scan)


async def _names_from_certificates(scan: ScanRun) -> None:
    state = scan.state
    if scan.resolver is None:
        return
    new = []
    for service in state.services:
        for san in (service.get("tls") or {}).get("sans", []):
            name = san.lower().removeprefix("*.")
            if state.add_name(name, "tls") and name not in state.answers:
                new.append(name)
    if not new:
        return
    answers = await scan.resolve(new)
    state.answers.update(answers)
    fresh = set()
    for name, answer in answers.items():
        for address in answer["addresses"]:
            if state.scope.address_in_scope(address, [name]):
                fresh.add(address)
                state.addresses.setdefault(address, set()).add(name)
    if fresh:
        services, warnings = await http.probe(_probe_targets(scan, sorted(fresh, key=address_key)))
        known = {s["url"] for s in state.services}
        state.services += [s.as_dict() for s in services if s.url not in known]
        state.warnings += warnings


def summary(scan: ScanRun) -> str:
    state = scan.state
    tls = sum(1 for s in state.services if s.get("tls"))
    from_certs = sum(1 for sources in state.names.values() if sources == {"tls"})
    line = f"HTTP: {len(state.services):,} web services ({tls:,} with TLS)"
    return line + (f"; {from_certs:,} new name(s) from certificates" if from_certs else "")


STAGE = Stage(
    name="http",
    module="http",
    help="status, title, server, redirects, TLS certificate, favicon hash and technologies of every web service",
    after=("resolve", "ports"),
    weight=20,
    options={"http_ports": Option(check_http_ports, "the web ports to probe, e.g. [80, 443, 8443] (HTTP_PORTS)")},
    run=run,
    summary=summary,
)
