"""Subdomain takeover, decided by the provider's own answer.

A name whose CNAME leads into a provider's namespace (GitHub Pages, S3, Heroku...) and resolves is served
by the provider's shared edge. Asked for that name, the edge either serves the site someone configured
for it, or its page for a name nobody claimed ("There isn't a GitHub Pages site here.", NoSuchBucket...):
the fingerprint in data/takeover.toml. `confirm()` asks `http(s)://name/` and says which:

    verdict = await confirm("docs.example.com", provider, pin=scan_pin)
    verdict.verdict   # "confirmed" / "likely" (the unclaimed page; the provider's confidence in it),
                      # "not vulnerable" (something else answered), "unknown" (no usable answer)

The connection goes where `pin` says (the address the scan's own resolvers gave for the name, in scope):
never through system DNS. The Host header and TLS server name are the name, as a browser would send
them; certificates are not checked (an unclaimed name has no certificate of its own). One deadline per
request for the headers and the body, a cap on the body, no redirects followed, no cookies kept.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx

from app.net.body import read_body
from app.net.pinning import PinFunction, no_cookies, pinned_transport
from app.net.text import printable_line
from app.scanners.dns.takeover import TakeoverProvider, TakeoverVerdict, escape_excerpt, normalise_text
from app.settings import get_settings

DEFAULT_PORTS = {"https": 443, "http": 80}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CLOSE_GRACE = 2.0  # seconds allowed to close a connection after a request's deadline
EXCERPT_LEAD = 64  # bytes of the body shown before the matched text
MAX_REASON_CHARS = 200
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_HOSTNAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)+")


@dataclass(frozen=True)
class _Answer:
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool


def takeover_client(
    pin: PinFunction, *, timeout: float | None = None, user_agent: str | None = None
) -> httpx.AsyncClient:
    """A client whose every connection goes where `pin` says (None from it: refused, nothing sent)."""
    s = get_settings()
    timeout = s.takeover_timeout_seconds if timeout is None else timeout
    context = httpx.create_ssl_context(verify=False, trust_env=False)  # read what answers; verify nothing
    transport = pinned_transport(pin, verify=context, limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout + CLOSE_GRACE),  # our deadline per request counts; this only backs it up
        follow_redirects=False,
        cookies=no_cookies(),
        headers={
            "User-Agent": s.http_user_agent if user_agent is None else user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate, br",
            "Connection": "close",
        },
        trust_env=False,  # never re-routed by the operator's proxy variables
    )


async def confirm(
    host: str,
    provider: TakeoverProvider,
    *,
    pin: PinFunction | None = None,
    client: httpx.AsyncClient | None = None,
    ports: Mapping[str, int] | None = None,
    timeout: float | None = None,
    body_cap: int | None = None,
    cname: str = "",
) -> TakeoverVerdict:
    """Ask the provider's edge for `host` and compare the answer with its unclaimed-page fingerprint.

    `client` (from takeover_client) or `pin` says where to connect; `ports` maps "https"/"http" to the
    ports asked (default TAKEOVER_HTTPS_PORT / TAKEOVER_HTTP_PORT); `timeout` bounds each request, headers
    and body together (TAKEOVER_TIMEOUT_SECONDS); at most `body_cap` bytes are read (TAKEOVER_MAX_BODY_BYTES).
    With scheme "both" the two are asked at once and a match on either decides. Never raises for what the
    target does: a failure is an "unknown" verdict with the reason.
    """
    fingerprint = provider.http
    if fingerprint is None:
        raise ValueError(f"{provider.name} is decided by DNS (nxdomain_required): there is no page to ask for")
    if client is None and pin is None:
        raise ValueError("confirm() needs the scan's pin (or a client made with one): never system DNS")
    s = get_settings()
    timeout = s.takeover_timeout_seconds if timeout is None else float(timeout)
    body_cap = s.takeover_max_body_bytes if body_cap is None else max(1, int(body_cap))
    ports = dict(ports) if ports is not None else {"https": s.takeover_https_port, "http": s.takeover_http_port}
    name = host.strip().rstrip(".").lower()

    def verdict(kind: str, **evidence) -> TakeoverVerdict:
        return TakeoverVerdict(kind, provider.name, "http", cname=cname, reference=provider.reference, **evidence)

    if not _HOSTNAME.fullmatch(name):
        return verdict("unknown", reason=f"not a host name: {printable_line(host, 80)!r}")
    schemes = ("https", "http") if fingerprint.scheme == "both" else (fingerprint.scheme,)
    owned = client is None
    if client is None:
        assert pin is not None
        client = takeover_client(pin, timeout=timeout)
    try:
        urls = [_url(scheme, name, ports.get(scheme, DEFAULT_PORTS[scheme])) for scheme in schemes]
        answers = await asyncio.gather(*(_ask(client, url, timeout, body_cap) for url in urls))
    finally:
        if owned:
            await client.aclose()
    for answer in answers:
        if isinstance(answer, _Answer) and (matched := fingerprint.match(answer.status, answer.headers, answer.body)):
            return verdict(
                provider.confidence,
                url=answer.url,
                status=answer.status,
                matched=matched,
                excerpt=_excerpt(answer.body, fingerprint.body),
                truncated=answer.truncated,
            )
    # Only an answer of the site itself rules the page out: not a redirect (to where we did not go), not an
    # error of the edge (a hiccup is no proof of a claimed site).
    for answer in answers:
        if isinstance(answer, _Answer) and answer.status not in REDIRECT_STATUSES and answer.status < 500:
            return verdict(
                "not vulnerable",
                url=answer.url,
                status=answer.status,
                excerpt=_excerpt(answer.body, ()),
                truncated=answer.truncated,
                reason="the provider answers for the name with something other than its unclaimed page "
                f"(status {answer.status})",
            )
    reasons = []
    for url, answer in zip(urls, answers, strict=True):
        if isinstance(answer, _Answer):
            where = dict((k.lower(), v) for k, v in answer.headers).get("location", "")
            moved = f" to {printable_line(where, 200)}" if answer.status in REDIRECT_STATUSES and where else ""
            reasons.append(f"{url}: status {answer.status}{moved}")
        else:
            reasons.append(f"{url}: {answer}")
    return verdict("unknown", reason="; ".join(reasons))


async def confirm_many(
    candidates: Iterable[tuple[str, TakeoverProvider, str]],
    *,
    pin: PinFunction,
    ports: Mapping[str, int] | None = None,
    timeout: float | None = None,
    body_cap: int | None = None,
    concurrency: int | None = None,
) -> list[TakeoverVerdict]:
    """confirm() for each (host, provider, cname), a few at a time, through one pinned client; in order."""
    items = list(candidates)
    if not items:
        return []
    gate = asyncio.Semaphore(max(1, concurrency or get_settings().http_concurrency))

    async def one(host: str, provider: TakeoverProvider, cname: str) -> TakeoverVerdict:
        async with gate:
            return await confirm(
                host, provider, client=client, ports=ports, timeout=timeout, body_cap=body_cap, cname=cname
            )

    async with takeover_client(pin, timeout=timeout) as client:
        return list(await asyncio.gather(*(one(*item) for item in items)))


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}" + ("" if port == DEFAULT_PORTS[scheme] else f":{port}") + "/"


async def _ask(client: httpx.AsyncClient, url: str, timeout: float, body_cap: int) -> _Answer | str:
    """One GET: the answer, or why there is none. Headers and body share one deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline + CLOSE_GRACE):
            async with asyncio.timeout_at(deadline):
                response = await client.send(client.build_request("GET", url), stream=True)
            try:
                got = await read_body(response, body_cap, deadline=deadline)
            finally:
                await response.aclose()
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # httpx / ssl / OSError: whatever the target did costs this request only
        text = str(exc) or str(exc.__cause__ or "")
        return printable_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, MAX_REASON_CHARS)
    return _Answer(url, response.status_code, list(response.headers.multi_items()), got.data, got.truncated)


def _excerpt(body: bytes, strings: Iterable[str]) -> str:
    """At most 512 bytes of the body, escaped, starting a little before the first fingerprint string found."""
    start = 0
    lowered = body.lower()
    for wanted in strings:
        head = normalise_text(wanted).split("*", 1)[0].split("'", 1)[0][:24].encode()
        at = lowered.find(head) if head else -1
        if at >= 0:
            start = max(0, at - EXCERPT_LEAD)
            break
    while start and (body[start] & 0xC0) == 0x80:  # not in the middle of a UTF-8 character
        start -= 1
    return escape_excerpt(body[start:])
