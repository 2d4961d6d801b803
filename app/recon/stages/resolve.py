"""Names to addresses: the names found so far and the target's own, resolved; then only the addresses in
scope are kept (the target's networks, or an in-scope name that resolves to them). Always runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from app.errors import ResolverError, ScanError
from app.net.names import is_address
from app.recon import inventory
from app.recon.stage import Option, ScanRun, Stage
from app.scanners.dns import parse_resolver


def check_resolvers(resolvers: Any) -> list[str]:
    if not isinstance(resolvers, list) or not resolvers or not all(isinstance(r, str) for r in resolvers):
        raise ScanError("'resolvers' must be a non-empty list of \"HOST:PORT\" strings")
    try:
        return [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in map(parse_resolver, resolvers)]
    except ResolverError as exc:
        raise ScanError(f"resolvers: {exc}") from None


def check_incremental(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScanError("'incremental' must be true or false")
    return value


async def run(scan: ScanRun) -> None:
    state = scan.state
    for domain in state.scope.domains:
        state.add_name(domain, "input")
    for url in state.scope.urls:
        host = (urlsplit(url).hostname or "").lower()
        if host and not is_address(host):
            state.add_name(host, "input")
    known = inventory.known(scan.scan.target_id) if scan.options.get("incremental") and scan.scan.target_id else None
    if known:
        _skip(state.names, known[0], "name(s)", state.warnings)
    if scan.resolver is not None:
        names = sorted(state.names)
        report = scan.reporter(lambda done, total: f"Resolving {done:,} of {total:,} names")
        scan.log(f"Resolving {len(names):,} names")
        scan.say(f"Resolving {len(names):,} names")
        state.answers = await scan.resolve(names, report)
        for name, answer in state.answers.items():
            for address in answer["addresses"]:
                state.addresses.setdefault(address, set()).add(name)
    for address in state.scope.addresses():
        state.addresses.setdefault(address, set())
    for url in state.scope.urls:
        host = (urlsplit(url).hostname or "").lower()
        if is_address(host):
            state.addresses.setdefault(host, set())
    outside = [a for a, names in state.addresses.items() if not state.scope.address_in_scope(a, names)]
    for address in outside:
        del state.addresses[address]
    if outside:
        state.warnings.append(
            f"{len(outside)} address(es) outside the scope were not contacted: {', '.join(sorted(outside)[:10])}"
        )
    if known:
        _skip(state.addresses, known[1], "address(es)", state.warnings)


def _skip(found: dict[str, Any], known: set[str], what: str, warnings: list[str]) -> None:
    """Incremental scans leave out what the target already knows."""
    skipped = [item for item in found if item in known]
    for item in skipped:
        del found[item]
    if skipped:
        warnings.append(f"incremental: {len(skipped)} known {what} skipped")


def summary(scan: ScanRun) -> str:
    state = scan.state
    if scan.resolver is None:
        return f"Addresses: {len(state.addresses):,} in scope"
    answered = sum(1 for answer in state.answers.values() if answer["addresses"])
    takeovers = sum(1 for answer in state.answers.values() if answer.get("takeover"))
    line = f"DNS: {answered:,} of {len(state.answers):,} names resolve to {len(state.addresses):,} addresses in scope"
    return line + (f"; {takeovers:,} takeover candidate(s)" if takeovers else "")


STAGE = Stage(
    name="resolve",
    after=("discover",),
    weight=15,
    options={
        "resolvers": Option(check_resolvers, 'DNS resolvers for this scan, ["HOST:PORT", ...] (default: RESOLVERS)'),
        "incremental": Option(check_incremental, "skip the names and addresses the target already knows"),
    },
    run=run,
    summary=summary,
)
