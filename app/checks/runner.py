"""Run HTTP templates against web services: bounded, rate-limited, in scope, read-only by default.

- Scope: a request goes only to the host of the target it was made for. A path that expands to another
  host is not sent, a redirect to another host is not followed, and every connection goes through the
  caller's pin function (the scan's own resolution) when one is given.
- Read-only: templates whose requests use methods other than GET, HEAD and OPTIONS run only when the
  caller allows bodies; otherwise they are counted as skipped.
- Bounds: a concurrency limit, a global and a per-host request rate, a deadline per request (connect to
  last body byte), a cap on the body read, a cap on requests per template and target.
- Connections are kept alive and reused per host (the pool is keyed by the URL's host name; the pin
  function maps that name to the scan's address at connect time).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from app.checks.matching import Response, extract, request_matches
from app.checks.model import HttpRequest, Template
from app.checks.variables import combinations, expand, target_variables
from app.net.body import read_body
from app.net.pinning import PinFunction, no_cookies, pinned_transport
from app.settings import Settings

EVIDENCE_BYTES = 2048  # of the response body kept with a finding
PER_HOST_CONNECTIONS = 8  # connections kept open to one scheme://host:port


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 50
    global_rate: float = 1000.0  # requests per second, all hosts
    host_rate: float = 100.0  # requests per second to one host
    timeout: float = 10.0
    body_cap: int = 1 << 20
    allow_bodies: bool = False
    verify_tls: bool = False
    pin: PinFunction | None = None
    max_requests: int = 200  # per template and target
    user_agent: str = "Mozilla/5.0 (compatible; AssetMon checks)"

    @classmethod
    def from_settings(cls, s: Settings, pin: PinFunction | None = None) -> RunOptions:
        """The CHECKS_* settings: what the CLI and the scan stage both run with."""
        return cls(
            concurrency=s.checks_concurrency,
            global_rate=s.checks_global_rate,
            host_rate=s.checks_host_rate,
            timeout=s.checks_timeout_seconds,
            body_cap=s.checks_body_bytes,
            allow_bodies=s.checks_allow_bodies,
            verify_tls=s.http_verify_tls,
            pin=pin,
        )


@dataclass
class CheckResult:
    template: str
    name: str
    severity: str
    target: str
    url: str
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    description: str = ""
    remediation: str = ""
    matchers: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    status: int = 0
    request: str = ""
    response: str = ""  # status line, headers and the start of the body, as text (escaped when shown)

    @property
    def fingerprint(self) -> str:
        """Same check, same URL, same named matchers: the same finding across scans."""
        key = "\0".join([self.template, self.url, ",".join(sorted(self.matchers))])
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class RunReport:
    results: list[CheckResult] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    out_of_scope: int = 0
    skipped_unsafe: list[str] = field(default_factory=list)  # template ids not run: they would send bodies
    seconds: float = 0.0


class _Rate:
    """Requests at most `rate` per second: each caller gets the next free slot and sleeps until it."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class _Run:
    def __init__(self, options: RunOptions, report: RunReport, on_result: Callable[[CheckResult], None] | None):
        self.options = options
        self.report = report
        self.on_result = on_result
        self.global_rate = _Rate(options.global_rate)
        self.host_rates: dict[str, _Rate] = {}
        # without verify_tls, neither the chain nor the name is checked (httpx turns both off)
        self.context = httpx.create_ssl_context(verify=options.verify_tls, trust_env=False)
        self.clients: dict[str, httpx.AsyncClient] = {}

    def client_for(self, url: str) -> httpx.AsyncClient:
        """One pooled client per scheme://host:port. One pool for every host would, with more hosts than
        connections, close an idle connection to one host for each request to another (and httpcore
        scans the whole pool on every request): per host, connections are kept and reused."""
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}".lower()
        client = self.clients.get(key)
        if client is None:
            per_host = min(self.options.concurrency, PER_HOST_CONNECTIONS)
            limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
            transport = pinned_transport(self.options.pin, verify=self.context, limits=limits)
            client = self.clients[key] = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(self.options.timeout),
                follow_redirects=False,
                cookies=no_cookies(),  # every template shares a host's client
                headers={"User-Agent": self.options.user_agent, "Accept": "*/*"},
                trust_env=False,
            )
        return client

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients.values()), return_exceptions=True)

    async def send(
        self, method: str, url: str, headers: list[tuple[str, str]], body: str, target_host: str
    ) -> Response | None:
        host = (urlsplit(url).hostname or "").lower()
        if host != target_host:
            self.report.out_of_scope += 1
            return None
        rate = self.host_rates.setdefault(host, _Rate(self.options.host_rate))
        await self.global_rate.wait()
        await rate.wait()
        started = time.perf_counter()
        self.report.requests += 1
        try:
            async with asyncio.timeout(self.options.timeout):
                client = self.client_for(url)
                request = client.build_request(method, url, headers=headers, content=body.encode() or None)
                response = await client.send(request, stream=True)
                try:
                    got = await read_body(response, self.options.body_cap)
                finally:
                    await response.aclose()
        except (httpx.HTTPError, TimeoutError, ssl.SSLError, OSError, ValueError):
            self.report.errors += 1
            return None
        sent = f"{method} {url}\r\n" + "".join(
            f"{k.decode('latin-1')}: {v.decode('latin-1')}\r\n" for k, v in request.headers.raw
        )
        return Response(
            status=response.status_code,
            # as the server spelt them: nuclei's word matchers on the header part are case-sensitive
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw],
            body=got.data,
            duration=time.perf_counter() - started,
            url=url,
            request=sent,
        )

    async def follow(
        self, method: str, url: str, headers: list[tuple[str, str]], body: str, target_host: str, hops: int
    ) -> Response | None:
        response = await self.send(method, url, headers, body, target_host)
        while response is not None and hops > 0 and response.status in (301, 302, 303, 307, 308):
            location = next((v for k, v in response.headers if k.lower() == "location"), "")
            if not location:
                break
            next_url = urljoin(response.url, location)
            if (urlsplit(next_url).hostname or "").lower() != target_host:
                break  # the redirect leaves the target: the answer we have is the one matched
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", ""
            hops -= 1
            response = await self.send(method, next_url, headers, body, target_host)
        return response


def _requests_of(request: HttpRequest, values: dict[str, Any]) -> Iterable[tuple[str, str, list[tuple[str, str]], str]]:
    """(method, url, headers, body) of each request one template block makes, variables expanded."""
    for payload in combinations(request.payloads, request.attack):
        names = {**values, **payload}
        headers = [(k, expand(v, names)) for k, v in request.headers]
        for path in request.paths:
            yield request.method, expand(path, names), headers, expand(request.body, names)
        for raw in request.raw:
            target = expand(raw.target, names)
            url = target if "://" in target else names["RootURL"] + target
            raw_headers = [(k, expand(v, names)) for k, v in raw.headers if k.lower() not in ("host", "content-length")]
            yield raw.method, url, raw_headers + headers, expand(raw.body, names)


async def _run_one(run: _Run, template: Template, target: str) -> None:
    values: dict[str, Any] = target_variables(target)
    target_host = (urlsplit(target).hostname or "").lower()
    for name, value in template.variables:
        values[name] = expand(value, values)
    sent = 0
    for number, block in enumerate(template.requests, 1):
        for method, url, headers, body in _requests_of(block, values):
            if sent >= run.options.max_requests:
                return
            sent += 1
            hops = block.max_redirects if block.redirects else 0
            response = await run.follow(method, url, headers, body, target_host, hops)
            if response is None:
                continue
            names = {**values, **response.variables(), **response.variables(number)}
            extracted: list[str] = []
            for extractor in block.extractors:
                found = extract(extractor, response, names)
                if (extractor.internal or extractor.name) and found:
                    values[extractor.name or "extracted"] = found[0]  # a value for the next requests
                if not extractor.internal:
                    extracted.extend(found)
            matched, matcher_names = request_matches(block, response, names)
            # A template of extractors only reports what it extracted.
            if matched or (not block.matchers and extracted):
                _report(run, template, target, response, matcher_names, list(dict.fromkeys(extracted)))
                if block.stop_at_first_match:
                    return


def _report(
    run: _Run, template: Template, target: str, response: Response, matchers: list[str], extracted: list[str]
) -> None:
    excerpt = response.body[:EVIDENCE_BYTES].decode("utf-8", "replace")
    result = CheckResult(
        template=template.id,
        name=template.info.name,
        severity=template.info.severity,
        target=target,
        url=response.url,
        tags=template.info.tags,
        references=template.info.references,
        description=template.info.description,
        remediation=template.info.remediation,
        matchers=matchers,
        extracted=extracted,
        status=response.status,
        request=response.request[:EVIDENCE_BYTES],
        response=f"HTTP {response.status}\r\n{response.header_text}\r\n{excerpt}",
    )
    run.report.results.append(result)
    if run.on_result is not None:
        run.on_result(result)


async def run_templates(
    targets: Iterable[str],
    templates: Iterable[Template],
    options: RunOptions | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunReport:
    """Every template against every target URL. Targets are `scheme://host[:port][/path]` strings the
    caller has validated and scoped."""
    options = options or RunOptions()
    report = RunReport()
    started = time.perf_counter()
    runnable = []
    for template in templates:
        if template.sends_bodies and not options.allow_bodies:
            report.skipped_unsafe.append(template.id)
        else:
            runnable.append(template)
    target_list = [t.rstrip("/") if urlsplit(t).path in ("", "/") else t for t in targets]
    run = _Run(options, report, on_result)
    # Templates outer, targets inner: consecutive jobs go to different hosts, so per-host rates and
    # connection pools are used side by side rather than one host at a time.
    jobs = ((template, target) for template in runnable for target in target_list)

    total = len(runnable) * len(target_list)
    done = 0

    async def worker() -> None:
        nonlocal done
        for template, target in jobs:
            await _run_one(run, template, target)
            done += 1
            if on_progress is not None:
                on_progress(done, total)  # may raise: a cancelled job stops here

    try:
        workers = max(1, min(options.concurrency, total))
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await run.aclose()
    report.results.sort(key=lambda r: (r.target, r.template, r.url))
    report.seconds = time.perf_counter() - started
    return report
