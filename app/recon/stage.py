"""A recon stage as a plug-in: what a stage declares (`Stage`) and what it is given when it runs (`ScanRun`).

A stage is one file in app/recon/stages/ that ends with `STAGE = Stage(...)`. The pipeline learns all it
needs from those declarations (app/recon/stages/__init__.py reads them): the modules a scan may choose,
the options it accepts, the order the stages run in, their shares of the progress bar, and which of
them several workers can share. Adding a stage is adding a file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.jobs import current_job
from app.models import Scan
from app.recon.scope import Scope
from app.recon.state import State
from app.scanners import dns, http
from app.settings import Settings

Progress = Callable[[int, int], None]  # progress(done, total)
SliceRunner = Callable[[dict[str, Any], Progress | None], Awaitable[Any]]
MAX_LOGGED_WARNINGS = 50  # per stage; the rest are in the result's warnings


@dataclass(frozen=True)
class Option:
    """A scan option a stage reads (`scan.options[name]`): `check` returns the value as stored, or raises
    ScanError saying what would be right."""

    check: Callable[[Any], Any]
    help: str


@dataclass(frozen=True)
class Stage:
    name: str  # shown as the scan's stage while it runs
    run: Callable[[ScanRun], Awaitable[None]]  # reads and adds to `scan.state`
    module: str | None = None  # the scan module that turns it on; None: it always runs
    default: bool = True  # whether a scan that names no modules has this one (False: asked for by name)
    help: str = ""  # what the module does, in one line
    needs: tuple[str, ...] = ()  # stages it cannot work without: they run too (before it)
    after: tuple[str, ...] = ()  # stages that run before it whenever both run
    weight: int = 10  # its share of the progress bar, relative to the other stages that run
    options: Mapping[str, Option] = field(default_factory=dict)
    summary: Callable[[ScanRun], str | None] | None = None  # the job-log line once it ran
    # One slice of its work, run by any worker (app/jobs/slices.py): the stage cuts and merges, the job
    # machinery shares the slices out.
    slice: SliceRunner | None = None


class ScanRun:
    """One scan while it runs, as its stages see it: the scan row, its state so far, the resolver, and the
    helpers every stage uses (log lines, progress, name resolution)."""

    def __init__(self, scan: Scan, settings: Settings, plan: Iterable[Stage]) -> None:
        self.scan = scan
        self.settings = settings
        self.options: dict[str, Any] = scan.options
        self.modules: list[str] = scan.modules
        self.state = State(scope=Scope.from_dict(scan.spec))
        self.resolver: dns.Resolver | None = None
        self.stage = ""
        self._spans = _spans(list(plan))
        self._warnings_logged = 0

    # --- telling people what happens ------------------------------------------------------------------

    def log(self, message: str, level: str = "info") -> None:
        """A line of the job's log (stages, totals, warnings; never one per item)."""
        current_job().log(message, level)

    def say(self, message: str) -> None:
        """What the scan is doing now, on the progress line, without moving the bar."""
        current_job().progress(None, message)

    def log_warnings(self) -> None:
        """The warnings since the last call, one line each (up to MAX_LOGGED_WARNINGS per stage)."""
        new = self.state.warnings[self._warnings_logged :]
        self._warnings_logged = len(self.state.warnings)
        for warning in new[:MAX_LOGGED_WARNINGS]:
            self.log(f"Warning: {warning}", "warning")
        if len(new) > MAX_LOGGED_WARNINGS:
            self.log(f"... and {len(new) - MAX_LOGGED_WARNINGS:,} more warning(s): see the results", "warning")

    def reporter(self, message: Callable[[int, int], str], part: int = 0, parts: int = 1) -> Progress:
        """A progress(done, total) for the running stage (or one of `parts` equal parts of it): it moves the
        scan's bar within the stage's share, and is a checkpoint where a cancel stops the scan."""
        start, width = self._spans.get(self.stage, (0.0, 0.0))

        def report(done: int, total: int) -> None:
            percent = int(start + width * (part + (done / total if total else 1)) / parts)
            current_job().progress(min(percent, 99), message(done, total))

        return report

    # --- helpers ----------------------------------------------------------------------------------------

    async def resolve(self, names: list[str], progress: Progress | None = None) -> dict[str, dict[str, Any]]:
        """{name: {"addresses", "cname"?, "takeover"?, "takeover_evidence"?}}. A subdomain takeover is a CNAME
        into a claimable namespace whose target does not exist (DNS decides), or whose provider answers
        for the name with its page for an unclaimed resource (HTTP decides, asked at the address this
        scan resolved, in scope). Failures are warnings of the scan, never exceptions."""
        assert self.resolver is not None
        warnings = self.state.warnings
        raw = await dns.resolve_names(self.resolver, names, progress=progress, warnings=warnings)
        answers: dict[str, dict[str, Any]] = {}
        ask: list[tuple[str, dns.TakeoverProvider, str]] = []
        pins: dict[str, str] = {}
        for name, entry in raw.items():
            answer: dict[str, Any] = {"addresses": entry["A"] + entry["AAAA"]}
            answers[name] = answer
            if not entry["CNAME"]:
                continue
            answer["cname"] = entry["CNAME"][0]
            if not answer["addresses"]:
                try:
                    verdict = await dns.takeover_verdict(self.resolver, entry["CNAME"][-1])
                except dns.DNSFailure as exc:
                    warnings.append(f"takeover check of {name}: {exc}")
                    verdict = None
                if verdict is not None:
                    self._takeover(name, answer, verdict)
                continue
            hit = dns.http_takeover_provider(entry["CNAME"]) if self.settings.takeover_http_check else None
            if hit is None:
                continue
            address = next((a for a in answer["addresses"] if self.state.scope.address_in_scope(a, [name])), None)
            if address is not None:
                ask.append((name, hit[1], hit[0]))
                pins[name] = address
        if ask:
            s = self.settings
            verdicts = await http.confirm_many(
                ask,
                pin=lambda host: pins.get(host.lower().rstrip(".")),
                ports={"https": s.takeover_https_port, "http": s.takeover_http_port},
                timeout=s.takeover_timeout_seconds,
                body_cap=s.takeover_max_body_bytes,
            )
            for (name, _, _), verdict in zip(ask, verdicts, strict=True):
                if verdict.vulnerable:
                    self._takeover(name, answers[name], verdict)
        return answers

    def _takeover(self, name: str, answer: dict[str, Any], verdict: dns.TakeoverVerdict) -> None:
        answer["takeover"] = verdict.provider
        answer["takeover_evidence"] = verdict.as_dict()
        how = "does not exist" if verdict.method == "dns" else "answers with its page for an unclaimed name"
        self.state.warnings.append(
            f"{name} points at {verdict.cname}, which {how}: a subdomain takeover "
            f"candidate ({verdict.provider}), {verdict.verdict}"
        )


def _spans(plan: list[Stage]) -> dict[str, tuple[float, float]]:
    """Each stage's (start, width) on a 0-100 bar, in proportion to the weights of the stages that run."""
    total = sum(stage.weight for stage in plan) or 1
    spans, start = {}, 0.0
    for stage in plan:
        width = stage.weight * 100 / total
        spans[stage.name] = (start, width)
        start += width
    return spans


def some(items: list[str], limit: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit:,} more" if len(items) > limit else "")
