"""HTTP probing: what answers on a host's web ports, and what it is.

Each target (an IP address, a port and the name it was found under) is asked for `/` over HTTPS and
over plain HTTP. We connect to the IP and put the name in the Host header and the TLS server name,
so each address a name resolves to is seen on its own. From the answer: status, title, Server,
redirects followed on the same host, the certificate, the favicon hash (Shodan's), technologies
(rules in data/technologies.toml) and a hash of the body.

Targets are hostile by assumption. Every request has an overall deadline: httpx timeouts are per
read, and a server dripping a byte a second never trips them. Bodies are read raw and decoded with a
cap, so a gzip bomb costs at most `max_body` bytes. Anything that goes wrong with a target becomes a
warning, never an exception out of `probe()`; only cancellation and an exception raised by the
caller's `progress` callback propagate.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import ipaddress
import re
import ssl
import unicodedata
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack, suppress
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from app.net.body import read_body
from app.net.text import printable_line
from app.scanners.http.fingerprint import (
    MAX_HEADER_CHARS,
    TlsInfo,
    detect_technologies,
    favicon_hash,
    icon_href,
    load_technologies,
    page_title,
    tls_info,
)
from app.settings import get_settings

SCHEMES = ("https", "http")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_URL_CHARS = 2048
MAX_REASON_CHARS = 300
MAX_FAVICON_BYTES = 1 << 20
CLOSE_GRACE = 5.0  # seconds allowed to close a connection after a request's deadline
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate, br"


@dataclass(frozen=True)
class ProbeTarget:
    ip: str
    port: int
    hostname: str | None = None


@dataclass
class Service:
    url: str  # what people would visit: https://name[:port]/ or http://ip[:port]/ (default ports left out)
    host: str  # the IP address answered on
    port: int
    scheme: str
    hostname: str | None
    status: int  # of the last answer, after same-host redirects
    title: str | None = None
    server: str | None = None
    content_type: str | None = None
    content_length: int | None = None  # declared Content-Length, else the (decoded) bytes read
    truncated: bool = False  # the body went past max_body (or the deadline): body_hash covers what was read
    redirects: list[str] = field(default_factory=list)  # Location URLs followed, in order
    location: str | None = None  # a redirect not followed (another host, a loop, or past the limit)
    tls: TlsInfo | None = None
    favicon_hash: int | None = None
    technologies: list[str] = field(default_factory=list)
    body_hash: str = ""  # sha256 hex of the decoded body bytes read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[int, int], None]


async def probe(
    targets: list[ProbeTarget],
    *,
    timeout: float | None = None,
    concurrency: int | None = None,
    max_body: int | None = None,
    max_redirects: int | None = None,
    verify_tls: bool | None = None,
    user_agent: str | None = None,
    progress: Progress | None = None,
) -> tuple[list[Service], list[str]]:
    """Probe every target over HTTPS and HTTP; returns (services found, warnings), in target order.

    Arguments left at None come from settings. `progress(done, total)` is called with 0 first and after
    each target; an exception it raises stops the probe, closes its connections and propagates.
    """
    opts = _Options.resolve(timeout, max_body, max_redirects, verify_tls, user_agent)
    load_technologies()  # a broken rules file fails here, loudly, not as a warning per target
    if concurrency is None:
        concurrency = get_settings().http_concurrency
    concurrency = max(1, concurrency)
    warnings: list[str] = []
    unique: dict[_Target, None] = {}  # in order, each once
    for target in targets:
        try:
            unique[_Target.of(target)] = None
        except ValueError as exc:
            warnings.append(f"{printable_line(repr(target), MAX_REASON_CHARS)}: not probed: {exc}")
    valid = list(unique)
    total = len(valid)
    if progress:
        progress(0, total)
    results: list[tuple[list[Service], list[str]]] = [([], [])] * total
    finished: asyncio.Queue[tuple[int, list[Service], list[str]]] = asyncio.Queue()
    pending = iter(enumerate(valid))  # shared by the workers: each target is taken once
    gate = asyncio.Semaphore(concurrency)  # requests in flight (a target probes both schemes at once)

    async def worker() -> None:
        for index, target in pending:
            finished.put_nowait(await _probe_target(client, gate, index, target, opts))

    async with _client(opts) as client:
        # A few workers rather than a task per target: a /16 times five ports is 300,000 targets.
        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, total))]
        try:
            for done in range(1, total + 1):
                index, found, problems = await finished.get()
                results[index] = (found, problems)
                if progress:
                    progress(done, total)  # may raise: the job is being cancelled
        finally:
            # Done, progress raised, or we are cancelled: stop every request before the client closes its pool.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return [s for found, _ in results for s in found], warnings + [w for _, problems in results for w in problems]


# --- options, targets, the client ----------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    timeout: float
    max_body: int
    max_redirects: int
    verify_tls: bool
    user_agent: str

    @classmethod
    def resolve(
        cls,
        timeout: float | None,
        max_body: int | None,
        max_redirects: int | None,
        verify_tls: bool | None,
        user_agent: str | None,
    ) -> _Options:
        if None in (timeout, max_body, max_redirects, verify_tls, user_agent):
            s = get_settings()
            timeout = s.http_timeout_seconds if timeout is None else timeout
            max_body = s.http_max_body_bytes if max_body is None else max_body
            max_redirects = s.http_max_redirects if max_redirects is None else max_redirects
            verify_tls = s.http_verify_tls if verify_tls is None else verify_tls
            user_agent = s.http_user_agent if user_agent is None else user_agent
        assert timeout is not None and max_body is not None and max_redirects is not None
        return cls(float(timeout), max(1, int(max_body)), max(0, int(max_redirects)), bool(verify_tls), str(user_agent))


_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*")


@dataclass(frozen=True)
class _Target:
    ip: str  # normalised
    port: int
    hostname: str | None  # lowercase ASCII (IDNA), no trailing dot

    @classmethod
    def of(cls, target: ProbeTarget) -> _Target:
        ip = str(ipaddress.ip_address(str(target.ip).strip().strip("[]")))
        port = int(target.port)
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range")
        name = None
        if target.hostname:
            try:
                name = target.hostname.strip().rstrip(".").lower().encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"{target.hostname!r} is not a valid host name") from None
            if len(name) > 253 or not _HOSTNAME.fullmatch(name):
                raise ValueError(f"{target.hostname!r} is not a valid host name")
        return cls(ip, port, name)

    @property
    def label(self) -> str:
        where = f"{_literal(self.ip)}:{self.port}"
        return f"{self.hostname} ({where})" if self.hostname else where

    def start_url(self, scheme: str) -> str:
        return _origin(scheme, self.hostname or _literal(self.ip), self.port) + "/"

    def is_same_host(self, url: str) -> bool:
        """Whether a URL points at this target's name or address (any port): only those are followed."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return False
        if parts.scheme not in DEFAULT_PORTS or parts.username or parts.password or not parts.hostname:
            return False
        host = parts.hostname.rstrip(".")
        try:
            return str(ipaddress.ip_address(host)) == self.ip
        except ValueError:
            return host == self.hostname


def _literal(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _origin(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")


def _ssl_context(verify: bool) -> ssl.SSLContext:
    context = httpx.create_ssl_context(verify=verify, trust_env=False)
    if not verify:
        # We only read what a server presents: reach old devices too (TLS 1.0, weak ciphers).
        try:
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pass
    return context


def _client(opts: _Options) -> httpx.AsyncClient:
    context = _ssl_context(opts.verify_tls)
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False)
    # httpx has no switch for the network backend: give its transport a pool that uses ours. No keep-alive:
    # httpx pools connections by scheme, IP and port, not by TLS server name, so a kept-alive connection made
    # for one name would serve another name on the same address. One connection per request.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, max_connections=None, max_keepalive_connections=0, network_backend=_Backend()
    )
    return httpx.AsyncClient(
        transport=transport,
        # Our deadline per request (see _request) is the one that counts; httpx's per-read timeouts only back it up.
        timeout=httpx.Timeout(opts.timeout + CLOSE_GRACE),
        follow_redirects=False,
        headers={
            "User-Agent": opts.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "close",
        },
        trust_env=False,  # a scanner must not be silently re-routed by the operator's proxy variables
    )


# The connections opened by the request running in this task (see _Backend).
_opened: ContextVar[list[httpcore.AsyncNetworkStream] | None] = ContextVar("_opened", default=None)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend, noting each connection in the current request's list.

    httpcore leaves the socket open when a task is cancelled during the TLS handshake (it closes it
    on errors, not on cancellation): each deadline hit in a handshake, or the caller stopping the
    probe, would leave a connection to the target open until the garbage collector found it.
    `_request` closes what its request opened instead."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        opened = _opened.get()
        if opened is not None:
            opened.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# --- one target ------------------------------------------------------------------------------------


async def _probe_target(
    client: httpx.AsyncClient, gate: asyncio.Semaphore, index: int, target: _Target, opts: _Options
) -> tuple[int, list[Service], list[str]]:
    """Both schemes at once; never raises (but for cancellation), or the workers would stall."""

    async def one(scheme: str) -> _Outcome:
        async with gate:
            try:
                return await _probe_scheme(client, target, scheme, opts)
            except Exception as exc:  # a bug must cost one target, not the whole probe
                return _Outcome(warnings=[f"{target.label}: {scheme} probe failed: {_reason(exc, opts.timeout)}"])

    https, http = await asyncio.gather(*(one(scheme) for scheme in SCHEMES))
    if https.service and http.service and http.asks_for_tls:
        http.service = None  # nginx/Apache telling a plain client to use TLS: the same service, not a second one
    services = [o.service for o in (https, http) if o.service]
    warnings = https.warnings + http.warnings
    if not services and https.failed and http.failed and not http.failed.refused:
        warnings.append(f"{target.label}: no HTTP answer (https: {https.failed.reason}; http: {http.failed.reason})")
    return index, services, warnings


class _Failed(Exception):
    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused  # nothing listens: not worth a warning


@dataclass
class _Outcome:
    service: Service | None = None
    warnings: list[str] = field(default_factory=list)
    failed: _Failed | None = None
    asks_for_tls: bool = False  # a plain-HTTP answer saying "this port speaks HTTPS"


_ASKS_FOR_TLS = (b"plain HTTP request was sent to HTTPS port", b"speaking plain HTTP to an SSL-enabled server")


async def _probe_scheme(client: httpx.AsyncClient, target: _Target, scheme: str, opts: _Options) -> _Outcome:
    start = target.start_url(scheme)
    try:
        chain = await _fetch(client, target, start, opts, opts.max_body)
    except _Failed as failed:
        return _Outcome(failed=failed)
    outcome = _Outcome(warnings=[f"{target.label}: {w}" for w in chain.problems])
    first, last = chain.answers[0], chain.answers[-1]
    tls = None
    if first.certificate:
        try:
            tls = tls_info(first.certificate)
        except Exception as exc:  # ValueError mostly; a hostile certificate must not cost the service
            outcome.warnings.append(f"{target.label}: unreadable TLS certificate: {_reason(exc, opts.timeout)}")
    declared = last.headers.get("content-length", "").strip()
    outcome.service = Service(
        url=start,
        host=target.ip,
        port=target.port,
        scheme=scheme,
        hostname=target.hostname,
        status=last.status,
        title=page_title(last.body, last.headers.get("content-type", "")),
        server=_header(last.headers, "server"),
        content_type=_header(last.headers, "content-type"),
        content_length=int(declared) if declared.isascii() and declared.isdigit() else len(last.body),
        truncated=last.truncated,
        redirects=chain.followed,
        location=chain.unfollowed,
        tls=tls,
        favicon_hash=await _favicon(client, target, last, opts),
        technologies=sorted(
            detect_technologies([h for a in chain.answers for h in a.headers.multi_items()], last.body)
        ),
        body_hash=hashlib.sha256(last.body).hexdigest(),
    )
    first_bytes = first.body[:4096]
    outcome.asks_for_tls = scheme == "http" and first.status == 400 and any(m in first_bytes for m in _ASKS_FOR_TLS)
    return outcome


# --- requests -------------------------------------------------------------------------------------


@dataclass
class _Answer:
    url: str  # as people would write it (by name)
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    late: bool  # the deadline passed while the body was still arriving
    certificate: bytes | None  # DER, https only

    @property
    def location(self) -> str | None:
        if self.status not in REDIRECT_STATUSES:
            return None
        value = self.headers.get("location", "").strip()
        return value or None


@dataclass
class _Chain:
    answers: list[_Answer]
    followed: list[str] = field(default_factory=list)
    unfollowed: str | None = None
    problems: list[str] = field(default_factory=list)


async def _fetch(client: httpx.AsyncClient, target: _Target, url: str, opts: _Options, cap: int) -> _Chain:
    """GET `url` and follow redirects on the same host, by hand (each hop connects to the target's IP).
    Raises _Failed when the first request fails; later failures end the chain with a problem noted."""
    answer = await _request(client, target, url, opts, cap)
    chain = _Chain([answer])
    seen = {url}
    while answer.location:
        location = _clean_url(urljoin(answer.url, answer.location))
        if not target.is_same_host(location):
            chain.unfollowed = location
            break
        if location in seen:
            chain.unfollowed = location
            chain.problems.append(f"redirect loop: {answer.url} redirects back to {location}")
            break
        if len(chain.followed) >= opts.max_redirects:
            chain.unfollowed = location
            if opts.max_redirects:
                chain.problems.append(f"more than {opts.max_redirects} redirects; stopped before {location}")
            break
        try:
            answer = await _request(client, target, location, opts, cap)
        except _Failed as failed:
            chain.unfollowed = location
            chain.problems.append(f"redirect to {location} failed: {failed.reason}")
            break
        seen.add(location)
        chain.followed.append(location)
        chain.answers.append(answer)
    for a in chain.answers:
        if a.late:
            chain.problems.append(f"{a.url}: body not complete within {opts.timeout:g} s; kept {len(a.body):,} bytes")
    return chain


async def _request(client: httpx.AsyncClient, target: _Target, url: str, opts: _Options, cap: int) -> _Answer:
    """One GET to the target's IP, with the URL's host in the Host header and TLS server name.

    Headers and body share one deadline; a body still arriving at the deadline is kept as far as it
    got (marked truncated). Everything that goes wrong is raised as _Failed."""
    deadline = asyncio.get_running_loop().time() + opts.timeout
    opened: list[httpcore.AsyncNetworkStream] = []
    token = _opened.set(opened)
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        port = parts.port or DEFAULT_PORTS[scheme]
        name = (parts.hostname or "").rstrip(".")
        by_name = name == target.hostname
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = _origin(scheme, name if by_name else _literal(target.ip), port).split("://", 1)[1]
        request = client.build_request(
            "GET",
            f"{scheme}://{_literal(target.ip)}:{port}{path}",
            headers={"Host": host_header},
            extensions={"sni_hostname": name} if by_name and scheme == "https" else {},
        )
        async with asyncio.timeout_at(deadline + CLOSE_GRACE), AsyncExitStack() as stack:
            async with asyncio.timeout_at(deadline):
                response = await client.send(request, stream=True)
            stack.push_async_callback(response.aclose)
            certificate = _peer_certificate(response) if scheme == "https" else None
            got = await read_body(response, cap, deadline=deadline)
            return _Answer(url, response.status_code, response.headers, got.data, got.truncated, got.late, certificate)
    except Exception as exc:
        raise _Failed(_reason(exc, opts.timeout), _refused(exc)) from exc
    finally:
        _opened.reset(token)
        for stream in opened:  # closed already, unless cancelled in a TLS handshake
            with suppress(Exception):
                await stream.aclose()


def _peer_certificate(response: httpx.Response) -> bytes | None:
    # Available with verification off too: the binary form is returned whether or not it was checked.
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _refused(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, ConnectionRefusedError) or (isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no complete answer within {timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    text = str(exc)
    if not text and exc.__cause__ is not None:
        text = str(exc.__cause__)
    return printable_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, MAX_REASON_CHARS)


# --- what the answer says ---------------------------------------------------------------------------


def _clean_url(url: str) -> str:
    kept = "".join(c for c in url.strip() if unicodedata.category(c) not in ("Cc", "Cf"))
    return kept.replace(" ", "%20")[:MAX_URL_CHARS]


def _header(headers: httpx.Headers, name: str) -> str | None:
    return printable_line(headers.get(name, ""), MAX_HEADER_CHARS) or None


async def _favicon(client: httpx.AsyncClient, target: _Target, page: _Answer, opts: _Options) -> int | None:
    """Shodan's favicon hash (mmh3 of the base64 with newlines) of the page's icon on the same host,
    else /favicon.ico; None when there is none (or it is an error page, or bigger than the cap)."""
    href = icon_href(page.body)
    url = urljoin(page.url, href) if href and not href.lower().startswith("data:") else None
    if not url or not target.is_same_host(url):
        url = urljoin(page.url, "/favicon.ico")
    cap = min(MAX_FAVICON_BYTES, opts.max_body)
    try:
        async with asyncio.timeout(opts.timeout):  # one deadline for the icon and its redirects
            icon = (await _fetch(client, target, _clean_url(url), opts, cap)).answers[-1]
    except (_Failed, TimeoutError):
        return None
    content_type = icon.headers.get("content-type", "").lower()
    if icon.status != 200 or icon.truncated or not icon.body or "html" in content_type:
        return None
    if icon.body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return None  # a "soft 404": the site's page served for any path
    return favicon_hash(icon.body)
