"""Find and scan the JavaScript a web target serves.

Fetch the page, follow `<script src>`, module preloads, inline scripts, webpack/Vite chunk
references and source maps on the same site, and scan every response on the way. Bounded
in files, bytes, depth and time (settings); responses are size-capped after decompression;
nothing fetched is executed.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes, urldefrag, urljoin, urlsplit

import httpx

from app.errors import BodyRefused, SkipFile
from app.jobs.context import current_job
from app.net.body import read_whole
from app.net.pinning import PinFunction, pinned_transport
from app.net.urls import check_url, same_site
from app.secrets import links
from app.secrets.engine import Finding, Matcher, scan_bytes
from app.secrets.scan import make_matcher
from app.secrets.sourcemap import annotate
from app.settings import get_settings

MAX_REDIRECTS = 5
MAX_ENDPOINTS = 5000


@dataclass
class Limits:
    max_files: int = 200
    max_file_bytes: int = 32 << 20
    max_total_bytes: int = 512 << 20
    max_depth: int = 3
    timeout: float = 300.0
    request_timeout: float = 15.0
    concurrency: int = 8
    max_decompression_ratio: int = 100
    user_agent: str = "AssetMon"
    verify_tls: bool = False

    @classmethod
    def from_settings(cls) -> Limits:
        s = get_settings()
        return cls(
            max_files=s.discovery_max_files,
            max_file_bytes=s.discovery_max_file_bytes,
            max_total_bytes=s.discovery_max_total_bytes,
            max_depth=s.discovery_max_depth,
            timeout=s.discovery_timeout_seconds,
            request_timeout=s.http_timeout_seconds,
            concurrency=s.http_concurrency,
            max_decompression_ratio=s.secrets_max_decompression_ratio,
            user_agent=s.http_user_agent,
            verify_tls=s.http_verify_tls,
        )


@dataclass
class Fetch:
    url: str
    kind: str  # page | script | map
    depth: int
    referrer: str | None = None


@dataclass
class FileResult:
    url: str
    kind: str
    depth: int
    referrer: str | None
    status: int | None = None
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {"url": self.url, "kind": self.kind, "depth": self.depth, "status": self.status, "bytes": self.bytes}
        data["findings"] = len(self.findings)
        if self.referrer:
            data["referrer"] = self.referrer
        if self.skipped:
            data["skipped"] = self.skipped
        return data


@dataclass
class Discovery:
    target: str
    files: list[FileResult] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)  # endpoint -> first file referring to it
    warnings: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.files for f in r.findings]


OnFile = Callable[[FileResult], None]


async def _get(client: httpx.AsyncClient, url: str, target: str, limits: Limits) -> tuple[int, str, bytes, dict]:
    """GET with redirects followed by hand (each hop must stay on the site) and a decoded-size cap."""
    for _ in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", url) as response:
            if response.is_redirect and "location" in response.headers:
                location = urljoin(url, response.headers["location"])
                if not same_site(location, target):
                    raise SkipFile(f"redirects off the site, to {location}")
                url = urldefrag(location)[0]
                continue
            if response.status_code >= 400:
                raise SkipFile(f"HTTP {response.status_code}")
            try:
                body = await read_whole(response, limits.max_file_bytes, limits.max_decompression_ratio)
            except BodyRefused as reason:
                raise SkipFile(str(reason)) from None
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status_code, url, body, headers
    raise SkipFile(f"more than {MAX_REDIRECTS} redirects")


def _looks_like_html(body: bytes, content_type: str) -> bool:
    if "html" in content_type:
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<script"))


def _data_uri(ref: str, limit: int) -> bytes | None:
    """The bytes of an inline `data:` source map, or None when it is not one."""
    if not ref.startswith("data:") or "," not in ref:
        return None
    meta, payload = ref[5:].split(",", 1)
    if len(payload) > limit * 4 // 3 + 4:
        raise SkipFile("inline source map over the size cap")
    try:
        return base64.b64decode(payload) if meta.endswith(";base64") else unquote_to_bytes(payload)
    except ValueError:
        raise SkipFile("inline source map is not valid base64") from None


class Crawler:
    def __init__(
        self,
        target: str,
        matcher: Matcher,
        limits: Limits,
        on_file: OnFile | None = None,
        pin: PinFunction | None = None,
    ) -> None:
        self.target = check_url(target)
        self.pin = pin
        self.matcher = matcher
        self.limits = limits
        self.on_file = on_file
        self.result = Discovery(target=self.target)
        self.seen: set[str] = set()
        self.queued = 0
        self.done = 0

    def _enqueue(self, ref: str, base: str, kind: str, depth: int, referrer: str, out: list[Fetch]) -> None:
        url = urldefrag(urljoin(base, ref.strip()))[0]
        if url in self.seen or urlsplit(url).scheme not in ("http", "https"):
            return
        if not same_site(url, self.target):
            return
        if depth > self.limits.max_depth:
            return
        if len(self.seen) >= self.limits.max_files:
            self.result.warnings.append(f"file limit ({self.limits.max_files}) reached; {url} and later not fetched")
            return
        self.seen.add(url)
        out.append(Fetch(url, kind, depth, referrer))

    def _scan(self, item: FileResult, body: bytes, name: str) -> list[Finding]:
        findings = scan_bytes(self.matcher, body, name)
        if item.kind == "map":
            annotate(findings, body)
        return findings

    def _follow_script(
        self, url: str, body: bytes, depth: int, out: list[Fetch], page: str, found: list[Finding]
    ) -> None:
        refs = links.script_refs(body)
        # Bare chunk paths ("static/js/1.js") are relative to webpack's public path, else to the page.
        chunk_base = urljoin(url, refs.public_path) if refs.public_path else page
        for ref in refs.scripts:
            base = url if ref.startswith(("./", "../")) else chunk_base
            self._enqueue(ref, base, "script", depth + 1, url, out)
        if refs.source_map:
            self._source_map(refs.source_map, url, depth, out)
        for endpoint in links.endpoints(body):
            if len(self.result.endpoints) < MAX_ENDPOINTS:
                self.result.endpoints.setdefault(_without_secrets(endpoint, found), url)

    def _source_map(self, ref: str, url: str, depth: int, out: list[Fetch]) -> None:
        try:
            inline = _data_uri(ref, self.limits.max_file_bytes)
        except SkipFile as reason:
            self.result.files.append(FileResult(f"{url} (inline source map)", "map", depth, url, skipped=str(reason)))
            return
        if inline is None:
            self._enqueue(ref, url, "map", depth + 1, url, out)
            return
        item = FileResult(f"{url}#sourcemap", "map", depth + 1, url, bytes=len(inline))
        item.findings = self._scan(item, inline, item.url)
        self._record(item)

    def _record(self, item: FileResult) -> None:
        self.result.files.append(item)
        if self.on_file:
            self.on_file(item)

    async def _one(self, client: httpx.AsyncClient, fetch: Fetch, out: list[Fetch]) -> None:
        item = FileResult(fetch.url, fetch.kind, fetch.depth, fetch.referrer)
        try:
            if self.result.bytes_fetched >= self.limits.max_total_bytes:
                raise SkipFile(f"the job's {self.limits.max_total_bytes:,}-byte budget is spent")
            item.status, final_url, body, headers = await _get(client, fetch.url, self.target, self.limits)
        except SkipFile as reason:
            item.skipped = str(reason)
        except httpx.HTTPError as exc:
            item.skipped = _describe_http_error(exc)
        else:
            self.result.bytes_fetched += len(body)
            item.bytes = len(body)
            if fetch.kind == "map" and body.lstrip()[:1] != b"{":
                item.skipped = "not a source map (no JSON object)"
            else:
                self._process(item, final_url, body, headers, out)
        self.done += 1
        self._record(item)
        current_job().progress(
            min(99, self.done * 100 // max(1, self.queued)), f"fetched {self.done:,} of {self.queued:,} files"
        )

    def _process(self, item: FileResult, url: str, body: bytes, headers: dict, out: list[Fetch]) -> None:
        item.findings = self._scan(item, body, item.url)
        if item.kind == "map":
            return
        if item.kind == "page" and _looks_like_html(body, headers.get("content-type", "")):
            refs = links.page_refs(body)
            base = urljoin(url, refs.base) if refs.base else url
            for src in refs.scripts:
                self._enqueue(src, base, "script", item.depth + 1, url, out)
            for inline in refs.inline:
                self._follow_script(url, inline.encode("utf-8", "replace"), item.depth, out, base, item.findings)
            return
        self._follow_script(url, body, item.depth, out, self.target, item.findings)
        header_map = headers.get("sourcemap") or headers.get("x-sourcemap")
        if header_map:
            self._source_map(header_map, url, item.depth, out)

    async def run(self) -> Discovery:
        started = time.monotonic()
        limits = self.limits
        pool = httpx.Limits(max_connections=limits.concurrency, max_keepalive_connections=limits.concurrency)
        client = httpx.AsyncClient(
            timeout=limits.request_timeout,
            follow_redirects=False,
            headers={"User-Agent": limits.user_agent, "Accept-Encoding": "gzip, deflate, br"},
            transport=pinned_transport(self.pin, verify=limits.verify_tls, limits=pool),
            trust_env=False,  # a scanner must not be silently re-routed by the operator's proxy variables
        )
        self.seen.add(self.target)
        level = [Fetch(self.target, "page", 0)]
        self.queued = 1
        gate = asyncio.Semaphore(limits.concurrency)

        async def bounded(fetch: Fetch, out: list[Fetch]) -> None:
            async with gate:
                await self._one(client, fetch, out)

        try:
            async with client, asyncio.timeout(limits.timeout):
                while level:
                    following: list[Fetch] = []
                    await asyncio.gather(*(bounded(f, following) for f in level))
                    self.queued += len(following)
                    level = following
        except TimeoutError:
            left = self.queued - self.done
            self.result.warnings.append(f"time budget of {limits.timeout:g} s reached; {left} files not fetched")
        self.result.seconds = round(time.monotonic() - started, 3)
        return self.result


def _without_secrets(text: str, found: list[Finding]) -> str:
    """An endpoint (a webhook URL, a URL with a password) may hold a secret: show it redacted."""
    for finding in found:
        if finding.secret in text:
            text = text.replace(finding.secret, finding.redacted())
    return text


def _describe_http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.DecodingError):
        return "the response could not be decoded (bad gzip/brotli)"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def discover(
    url: str,
    matcher: Matcher | None = None,
    limits: Limits | None = None,
    on_file: OnFile | None = None,
    pin: PinFunction | None = None,
) -> Discovery:
    """Crawl one web target for JavaScript and scan it. Runs its own event loop; inside a running
    loop (a recon scan) await `Crawler(...).run()` instead. `pin` decides where each host connects."""
    crawler = Crawler(url, matcher or make_matcher(), limits or Limits.from_settings(), on_file, pin)
    return asyncio.run(crawler.run())
