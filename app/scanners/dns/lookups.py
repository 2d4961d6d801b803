"""Lookups in bulk: every record type of a name, and thousands of names at once.

The bulk functions keep going when lookups fail and append one line per failure (summarised past
MAX_FAILURE_LINES) to the `warnings` list they are given, or log them when given none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from app.errors import DNSFailure
from app.scanners.dns.transport import Answer, Resolver, normalise_name

log = logging.getLogger("app.scanners.dns")

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT")
PROGRESS_EVERY = 100  # names between progress() calls
MAX_FAILURE_LINES = 10  # per bulk call; the rest are counted in one summary line

Progress = Callable[[int, int], object]


class _Failures:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.count = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.lines) < MAX_FAILURE_LINES:
            self.lines.append(message)

    def report(self, warnings: list[str] | None) -> None:
        lines = list(self.lines)
        if self.count > len(lines):
            lines.append(f"... and {self.count - len(lines)} more DNS failures")
        if warnings is not None:
            warnings.extend(lines)
        else:
            for line in lines:
                log.warning("DNS: %s", line)


async def _run_all(
    items: Sequence[str], work: Callable[[str], Awaitable[None]], workers: int, progress: Progress | None
) -> None:
    """`work(item)` for every item, `workers` at a time; progress(done, total) every PROGRESS_EVERY items.

    Whatever `work` or `progress` raises (a cancelled job) propagates as is, after every other worker has
    been cancelled and awaited: nothing keeps running behind the caller's back.
    """
    total = len(items)
    if not total:
        if progress is not None:
            progress(0, 0)
        return
    pending = iter(items)
    done = 0

    async def worker() -> None:
        nonlocal done
        for item in pending:  # one shared iterator: each item is taken exactly once
            await work(item)
            done += 1
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                progress(done, total)

    tasks = [asyncio.ensure_future(worker()) for _ in range(min(workers, total))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all(awaitables: Iterable[Awaitable[Answer]]) -> list[Answer]:
    """gather() that lets every lookup finish before raising the first failure (no orphans)."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Answer)]


async def records(
    resolver: Resolver, name: str, *, types: Sequence[str] = RECORD_TYPES, warnings: list[str] | None = None
) -> dict[str, list[str]]:
    """{type: values} for A, AAAA, CNAME, MX, NS, TXT. A type whose lookup failed is [] plus a warning."""
    name = normalise_name(name)  # a bad name is the caller's ValueError, once
    failures = _Failures()

    async def one(rdtype: str) -> list[str]:
        try:
            return await resolver.query(name, rdtype)
        except DNSFailure as exc:
            failures.add(str(exc))
            return []

    values = await asyncio.gather(*(one(t) for t in types))
    failures.report(warnings)
    return dict(zip(types, values, strict=True))


async def resolve_names(
    resolver: Resolver, names: Iterable[str], progress: Progress | None = None, *, warnings: list[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """{name: {"A": [...], "AAAA": [...], "CNAME": [chain]}} for every valid name (normalised), concurrently.

    A name that does not exist has empty lists. "CNAME" is the chain followed, the name's own target first.
    """
    failures = _Failures()
    unique: dict[str, None] = {}
    for raw in names:
        try:
            unique.setdefault(normalise_name(raw), None)
        except ValueError as exc:
            failures.add(str(exc))
    results: dict[str, dict[str, list[str]]] = {}

    async def one(name: str) -> None:
        entry: dict[str, list[str]] = {"A": [], "AAAA": [], "CNAME": []}
        results[name] = entry
        try:
            a = await resolver.lookup(name, "A")
            entry["A"], entry["CNAME"] = list(a.values), list(a.cnames)
            if a.rcode == "NXDOMAIN":
                return  # nothing to ask AAAA about (a dangling chain ends there too)
            aaaa = await resolver.lookup(name, "AAAA")
            entry["AAAA"] = list(aaaa.values)
            entry["CNAME"] = entry["CNAME"] or list(aaaa.cnames)
        except DNSFailure as exc:
            failures.add(str(exc))

    try:
        await _run_all(list(unique), one, resolver.concurrency, progress)
    finally:
        failures.report(warnings)
    return {name: results[name] for name in unique if name in results}
