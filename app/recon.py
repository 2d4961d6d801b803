"""A recon scan, stage by stage: discover → resolve → ports → http → js.

One async pipeline in the job's process: stages that fan out (thousands of DNS queries, port
probes, HTTP requests) do so inside the event loop, so no task ever waits on another task.
Every address is checked against the target's scope before anything connects to it; results
are written to the scan row after each stage; progress is reported (and cancellation honoured)
between batches through the job context.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app import scans
from app.context import current_job
from app.scope import Scope

log = logging.getLogger("assetmon.recon")

# Share of the progress bar per stage (of the stages that run).
_WEIGHTS = {"discover": 20, "resolve": 15, "ports": 30, "http": 20, "js": 15}
MAX_NAMES_PER_ADDRESS = 20  # HTTP probes per address and port with distinct Host headers
JS_CONCURRENCY = 4
MAX_LOGGED_WARNINGS = 50  # per stage; the rest are in the result's warnings


@dataclass
class State:
    scope: Scope
    names: dict[str, set[str]] = field(default_factory=dict)  # name -> sources
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> resolution
    records: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # root domain -> MX/NS/TXT...
    wildcards: list[str] = field(default_factory=list)
    addresses: dict[str, set[str]] = field(default_factory=dict)  # address -> names
    open_ports: dict[str, list[int]] = field(default_factory=dict)
    scanned_ports: set[int] = field(default_factory=set)
    services: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    js_files: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def add_name(self, name: str, source: str) -> bool:
        name = name.lower().rstrip(".")
        # Certificates name IP addresses too (IP SANs); those are hosts, not subdomains.
        if _is_address(name) or not self.scope.name_in_scope(name):
            return False
        new = name not in self.names
        self.names.setdefault(name, set()).add(source)
        return new


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


class Progress:
    """Maps a stage's own done/total onto the scan's percentage, with a message people read."""

    def __init__(self, stages: list[str]) -> None:
        total = sum(_WEIGHTS[s] for s in stages) or 1
        self.spans: dict[str, tuple[float, float]] = {}
        start = 0.0
        for stage in stages:
            width = _WEIGHTS[stage] * 100 / total
            self.spans[stage] = (start, width)
            start += width

    def callback(
        self, stage: str, message: Callable[[int, int], str], part: int = 0, parts: int = 1
    ) -> Callable[[int, int], None]:
        """A progress(done, total) for one stage (or one of `parts` equal parts of it)."""
        start, width = self.spans.get(stage, (0.0, 0.0))

        def report(done: int, total: int) -> None:
            percent = int(start + width * (part + (done / total if total else 1)) / parts)
            current_job().progress(min(percent, 99), message(done, total))

        return report


def _stages(modules: list[str]) -> list[str]:
    stages = ["discover"] if "subdomains" in modules else []
    stages.append("resolve")
    stages += [m for m in ("ports", "http", "js") if m in modules]
    return stages


def _settings_ports(spec: str) -> list[int]:
    from app.scanners.ports import parse_ports

    return parse_ports(spec)


class Pipeline:
    def __init__(self, scan_id: str) -> None:
        from app.settings import get_settings

        self.scan = scans.get(scan_id)
        self.settings = get_settings()
        self.options = self.scan.options
        self.modules = self.scan.modules
        self.state = State(scope=Scope(**_scope_args(self.scan.spec)))
        self.progress = Progress(_stages(self.modules))
        self._warnings_logged = 0

    # --- helpers -------------------------------------------------------------------------------

    def _resolver(self):
        from app.scanners import dns

        specs = self.options.get("resolvers")
        return dns.Resolver([dns.parse_resolver(s) for s in specs] if specs else None)

    def _log(self, message: str, level: str = "info") -> None:
        current_job().log(message, level)

    def _log_warnings(self) -> None:
        """The warnings since the last call, one line each (up to MAX_LOGGED_WARNINGS per stage)."""
        new = self.state.warnings[self._warnings_logged :]
        self._warnings_logged = len(self.state.warnings)
        for warning in new[:MAX_LOGGED_WARNINGS]:
            self._log(f"Warning: {warning}", "warning")
        if len(new) > MAX_LOGGED_WARNINGS:
            self._log(f"... and {len(new) - MAX_LOGGED_WARNINGS:,} more warning(s): see the results", "warning")

    def _save(self, stage: str) -> dict[str, Any]:
        document = self.document()
        counts = {key: len(document[key]) for key in ("subdomains", "wildcards", "hosts", "services", "secrets")}
        counts["open_ports"] = sum(len(h["open_ports"]) for h in document["hosts"])
        scans.save(self.scan.id, stage=stage, counts=counts, result=document)
        return document

    def _pin(self, host: str) -> str | None:
        """Where a web request for `host` may connect: an in-scope address this scan resolved."""
        host = host.lower().strip("[]").rstrip(".")
        try:
            ipaddress.ip_address(host)
            return host if host in self.state.addresses else None
        except ValueError:
            pass
        for address, names in self.state.addresses.items():
            if host in names:
                return address
        return None

    # --- stages --------------------------------------------------------------------------------

    async def discover(self, resolver) -> None:
        from app.scanners import ct, dns

        domains = self.state.scope.domains
        labels = dns.load_wordlist(self.settings.wordlist_file)
        self._log(
            f"Discovering subdomains of {_some(domains)}: certificate transparency "
            f"and a brute force of {len(labels):,} words"
        )
        for index, domain in enumerate(domains):
            report = self.progress.callback(
                "discover",
                lambda done, total, d=domain: f"Brute-forcing {d}: {done:,} of {total:,} names",
                part=index,
                parts=len(domains),
            )
            current_job().progress(None, f"Searching certificate transparency for {domain}")
            try:
                for name in await ct.subdomains(domain, url_template=self.options.get("ct_url")):
                    self.state.add_name(name, "ct")
            except ct.CTError as exc:
                self.state.warnings.append(str(exc))

            try:
                found, wildcards = await dns.brute_force(
                    resolver, domain, labels, progress=report, warnings=self.state.warnings
                )
            except dns.DNSFailure as exc:
                self.state.warnings.append(f"brute force of {domain} stopped: {exc}")
                continue
            for name in found:
                self.state.add_name(name, "bruteforce")
            self.state.wildcards.extend(w for w in wildcards if w not in self.state.wildcards)

    async def resolve(self, resolver) -> None:
        from app.scanners import dns

        names = sorted(self.state.names)
        report = self.progress.callback("resolve", lambda done, total: f"Resolving {done:,} of {total:,} names")
        self._log(f"Resolving {len(names):,} names")
        current_job().progress(None, f"Resolving {len(names):,} names")
        self.state.answers = await self._resolve(resolver, names, report)
        if "dns" in self.modules:
            for domain in self.state.scope.domains:
                found = await dns.records(resolver, domain, warnings=self.state.warnings)
                self.state.records[domain] = {k: v for k, v in found.items() if v}
        for name, answer in self.state.answers.items():
            for address in answer["addresses"]:
                self.state.addresses.setdefault(address, set()).add(name)
        self._add_own_addresses()
        self._drop_out_of_scope()

    async def _resolve(self, resolver, names: list[str], report=None) -> dict[str, dict[str, Any]]:
        """{name: {"addresses", "cname"?, "takeover"?}}; a dangling CNAME into a claimable service is flagged."""
        from app.scanners import dns

        raw = await dns.resolve_names(resolver, names, progress=report, warnings=self.state.warnings)
        answers: dict[str, dict[str, Any]] = {}
        for name, entry in raw.items():
            answer: dict[str, Any] = {"addresses": entry["A"] + entry["AAAA"]}
            if entry["CNAME"]:
                answer["cname"] = entry["CNAME"][0]
                if not answer["addresses"]:
                    try:
                        provider = await dns.takeover_check(resolver, entry["CNAME"][-1])
                    except dns.DNSFailure as exc:
                        self.state.warnings.append(f"takeover check of {name}: {exc}")
                        provider = None
                    if provider:
                        answer["takeover"] = provider
                        self.state.warnings.append(
                            f"{name} points at {entry['CNAME'][-1]}, which does not exist: "
                            f"a subdomain takeover candidate ({provider})"
                        )
            answers[name] = answer
        return answers

    def _add_own_addresses(self) -> None:
        for address in self.state.scope.addresses():
            self.state.addresses.setdefault(address, set())
        for url in self.state.scope.urls:
            host = (urlsplit(url).hostname or "").lower()
            try:
                ipaddress.ip_address(host)
                self.state.addresses.setdefault(host, set())
            except ValueError:
                pass

    def _drop_out_of_scope(self) -> None:
        outside = [a for a, names in self.state.addresses.items() if not self.state.scope.address_in_scope(a, names)]
        for address in outside:
            del self.state.addresses[address]
        if outside:
            self.state.warnings.append(
                f"{len(outside)} address(es) outside the scope were not contacted: {', '.join(sorted(outside)[:10])}"
            )

    async def ports(self) -> None:
        from app import chunks
        from app.scanners import ports

        spec = self.options.get("ports") or self.settings.default_ports
        wanted = ports.parse_ports(spec)
        hosts = sorted(self.state.addresses, key=_address_key)
        self.state.scanned_ports = set(wanted)
        report = self.progress.callback(
            "ports", lambda done, total: f"Scanning ports: {done:,} of {total:,} probes on {len(hosts):,} hosts"
        )
        current_job().progress(None, f"Scanning {len(wanted):,} ports on {len(hosts):,} hosts")
        self._log(f"Scanning {len(wanted):,} ports on {len(hosts):,} hosts")
        if hosts:
            # A big scan is cut into slices that every worker on the scan's queue can run (app.chunks).
            slices = chunks.port_slices(hosts, wanted, self.settings.scan_chunk_probes)
            found = chunks.merge_ports(await chunks.run_all("ports", slices, progress=report))
            self.state.open_ports = {host: found.get(host, []) for host in hosts}

    def _http_ports(self) -> list[int]:
        configured = self.options.get("http_ports") or _settings_ports(self.settings.http_ports)
        return sorted(set(configured))

    def _probe_targets(self, addresses: list[str]):
        from app.scanners.http import ProbeTarget

        targets = []
        for address in addresses:
            names = sorted(self.state.addresses.get(address, ()))[:MAX_NAMES_PER_ADDRESS]
            for port in self._http_ports():
                # A port this scan found closed is not probed; one it did not scan is.
                scanned = "ports" in self.modules and port in self.state.scanned_ports
                if scanned and port not in self.state.open_ports.get(address, []):
                    continue
                targets += [ProbeTarget(address, port, name) for name in names] or [ProbeTarget(address, port, None)]
        return targets

    async def http(self, resolver) -> None:
        from app.scanners import http

        targets = self._probe_targets(sorted(self.state.addresses, key=_address_key))
        report = self.progress.callback("http", lambda done, total: f"Probing {done:,} of {total:,} web endpoints")
        current_job().progress(None, f"Probing {len(targets):,} web endpoints")
        self._log(f"Probing {len(targets):,} web endpoints")
        services, warnings = await http.probe(targets, progress=report)
        self.state.warnings += warnings
        self.state.services = [s.as_dict() for s in services]
        await self._names_from_certificates(resolver)

    async def _names_from_certificates(self, resolver) -> None:
        """Certificate SANs feed discovery: new in-scope names are resolved and their services probed."""
        from app.scanners import http

        if resolver is None:
            return
        new = []
        for service in self.state.services:
            for san in (service.get("tls") or {}).get("sans", []):
                name = san.lower().removeprefix("*.")
                if self.state.add_name(name, "tls") and name not in self.state.answers:
                    new.append(name)
        if not new:
            return
        answers = await self._resolve(resolver, new)
        self.state.answers.update(answers)
        fresh = set()
        for name, answer in answers.items():
            for address in answer["addresses"]:
                if self.state.scope.address_in_scope(address, [name]):
                    fresh.add(address)
                    self.state.addresses.setdefault(address, set()).add(name)
        if fresh:
            services, warnings = await http.probe(self._probe_targets(sorted(fresh, key=_address_key)))
            known = {s["url"] for s in self.state.services}
            self.state.services += [s.as_dict() for s in services if s.url not in known]
            self.state.warnings += warnings

    async def js(self) -> None:
        from app.secrets import store
        from app.secrets.discovery import Crawler, Limits
        from app.secrets.scan import make_matcher

        live = [s for s in self.state.services if s.get("status") is not None and s["status"] < 500]
        matcher = make_matcher()
        limits = Limits.from_settings()
        job_id = current_job().job_id
        report = self.progress.callback("js", lambda done, total: f"Scanning JavaScript of {done:,} of {total:,} sites")
        gate = asyncio.Semaphore(JS_CONCURRENCY)
        done = 0
        self._log(f"Scanning the JavaScript of {len(live):,} live sites")

        def on_file(item) -> None:
            if item.kind == "script" and not item.skipped:
                self.state.js_files.add(item.url)
            if item.findings:
                store.record(item.findings, item.url, job_id)
            for f in item.findings:
                self.state.secrets.append(
                    {
                        "rule": f.rule,
                        "url": item.url,
                        "line": f.line,
                        "secret": f.redacted(),
                        "fingerprint": f.fingerprint,
                    }
                )

        async def crawl(service: dict[str, Any]) -> None:
            nonlocal done
            async with gate:
                result = await Crawler(service["url"], matcher, limits, on_file, pin=self._pin).run()
                self.state.warnings += [f"{service['url']}: {w}" for w in result.warnings]
                done += 1
                report(done, len(live))

        await asyncio.gather(*(crawl(s) for s in live))

    # --- the whole scan ------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        resolver = self._resolver() if self._needs_dns() else None
        try:
            return await self._run(resolver)
        finally:
            if resolver is not None:
                await resolver.aclose()

    async def _run(self, resolver) -> dict[str, Any]:
        # The stage is written as it starts (a cancelled or failed scan shows where it stopped);
        # the results so far are written as each one ends.
        if "subdomains" in self.modules:
            self._save("discover")
            await self.discover(resolver)
            self._log_discovered()
        for domain in self.state.scope.domains:
            self.state.add_name(domain, "input")
        for url in self.state.scope.urls:
            host = (urlsplit(url).hostname or "").lower()
            if host and not _is_address(host):
                self.state.add_name(host, "input")
        known = self._known()
        if known:
            self._skip_known_names(known[0])
        self._save("resolve")
        if resolver is not None:
            await self.resolve(resolver)
        else:
            self._add_own_addresses()
            self._drop_out_of_scope()
        if known:
            self._skip_known_addresses(known[1])
        self._log_resolved(resolver is not None)
        if "ports" in self.modules:
            self._save("ports")
            await self.ports()
            hosts = sum(1 for found in self.state.open_ports.values() if found)
            opened = sum(len(found) for found in self.state.open_ports.values())
            self._log(f"Ports: {opened:,} open on {hosts:,} hosts")
            self._log_warnings()
        if "http" in self.modules or "js" in self.modules:
            self._save("http")
            await self.http(resolver)
            tls = sum(1 for s in self.state.services if s.get("tls"))
            from_certs = sum(1 for sources in self.state.names.values() if sources == {"tls"})
            line = f"HTTP: {len(self.state.services):,} web services ({tls:,} with TLS)"
            self._log(line + (f"; {from_certs:,} new name(s) from certificates" if from_certs else ""))
            self._log_warnings()
        if "js" in self.modules:
            self._save("js")
            await self.js()
            self._log(f"JavaScript: {len(self.state.js_files):,} files, {len(self.state.secrets):,} secrets")
            self._log_warnings()
        return self._save("done")

    def _log_discovered(self) -> None:
        sources = Counter(source for found in self.state.names.values() for source in found)
        line = (
            f"Subdomains: {len(self.state.names):,} names from CT and brute force "
            f"({sources['ct']:,} from CT, {sources['bruteforce']:,} from brute force)"
        )
        if self.state.wildcards:
            line += f"; wildcard zones: {_some(self.state.wildcards)}"
        self._log(line)
        self._log_warnings()

    def _log_resolved(self, resolved: bool) -> None:
        if resolved:
            answered = sum(1 for answer in self.state.answers.values() if answer["addresses"])
            takeovers = sum(1 for answer in self.state.answers.values() if answer.get("takeover"))
            line = f"DNS: {answered:,} of {len(self.state.answers):,} names resolve"
            line += f" to {len(self.state.addresses):,} addresses in scope"
            self._log(line + (f"; {takeovers:,} takeover candidate(s)" if takeovers else ""))
        else:
            self._log(f"Addresses: {len(self.state.addresses):,} in scope")
        self._log_warnings()

    # --- incremental scans: only what is new since the last run ----------------------------------

    def _known(self) -> tuple[set[str], set[str]] | None:
        if not self.options.get("incremental") or self.scan.target_id is None:
            return None
        from app.inventory import known

        return known(self.scan.target_id)

    def _skip_known_names(self, names: set[str]) -> None:
        skipped = [n for n in self.state.names if n in names]
        for name in skipped:
            del self.state.names[name]
        if skipped:
            self.state.warnings.append(f"incremental: {len(skipped)} known name(s) skipped")

    def _skip_known_addresses(self, addresses: set[str]) -> None:
        skipped = [a for a in self.state.addresses if a in addresses]
        for address in skipped:
            del self.state.addresses[address]
        if skipped:
            self.state.warnings.append(f"incremental: {len(skipped)} known address(es) skipped")

    def _needs_dns(self) -> bool:
        return bool(
            self.state.scope.domains or any(not _is_address(urlsplit(u).hostname or "") for u in self.state.scope.urls)
        )

    def document(self) -> dict[str, Any]:
        """The result, the same in the API and the CLI."""
        subdomains = []
        for name in sorted(self.state.names):
            answer = self.state.answers.get(name, {})
            entry: dict[str, Any] = {
                "name": name,
                "addresses": answer.get("addresses", []),
                "sources": sorted(self.state.names[name]),
            }
            if answer.get("cname"):
                entry["cname"] = answer["cname"]
            if answer.get("takeover"):
                entry["takeover"] = answer["takeover"]
            if name in self.state.records:
                entry["records"] = self.state.records[name]
            subdomains.append(entry)
        hosts = [
            {
                "host": address,
                "names": sorted(names),
                "open_ports": self.state.open_ports.get(address, []),
            }
            for address, names in sorted(self.state.addresses.items(), key=lambda kv: _address_key(kv[0]))
        ]
        return {
            "target": self.scan.target,
            "subdomains": subdomains,
            "wildcards": sorted(self.state.wildcards),
            "hosts": hosts,
            "services": sorted(self.state.services, key=lambda s: (s["url"], s.get("host", ""))),
            "secrets": self.state.secrets,
            "js_files": sorted(self.state.js_files),
            "warnings": self.state.warnings,
        }


def _some(items: list[str], limit: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit:,} more" if len(items) > limit else "")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def _scope_args(spec: dict[str, Any]) -> dict[str, Any]:
    rules = spec.get("scope", {})
    return {
        "domains": spec.get("domains", []),
        "networks": spec.get("cidrs", []),
        "urls": spec.get("urls", []),
        "include": rules.get("include", []),
        "exclude": rules.get("exclude", []),
    }


def run_scan(scan_id: str) -> dict[str, Any]:
    """The job: run every stage, write the result; returns a summary (the document is on the scan)."""
    pipeline = Pipeline(scan_id)
    current_job().progress(0, f"Starting scan of {pipeline.scan.target}", force=True)
    try:
        document = asyncio.run(pipeline.run())
    finally:
        scans.mark_finished(scan_id)
    counts = scans.get(scan_id).counts
    summary = ", ".join(
        f"{counts.get(k, 0):,} {k.replace('_', ' ')}" for k in ("subdomains", "hosts", "services", "secrets")
    )
    events = _changes(scan_id)
    if events:
        summary += f"; {len(events)} event(s)"
    current_job().progress(100, f"Done: {summary}", force=True)
    return {"scan_id": scan_id, "counts": counts, "warnings": len(document["warnings"]), "events": len(events)}


def _changes(scan_id: str) -> list[int]:
    """Events for a stored target's scan, queued for notification. Never fails the scan itself."""
    from app import changes

    try:
        event_ids = changes.detect(scan_id)
    except Exception:
        log.exception("change detection for scan %s failed", scan_id)
        return []
    if event_ids:
        try:
            from app.notify import outbox
        except ImportError:
            return event_ids
        try:
            outbox.enqueue(event_ids)
        except Exception:
            log.exception("queueing notifications for scan %s failed", scan_id)
    return event_ids
