"""DNS for recon: a fast asyncio stub resolver, record lookups, wildcard-aware brute force, takeover hints.

Why not dnspython's `dns.asyncquery.udp`: it opens a socket per query, which caps brute force at a few
thousand names a second. Here each nameserver gets a small pool of long-lived connected UDP sockets and
answers are matched to queries by ID *and* question, so a late answer or a forged datagram for some other
query is dropped. dnspython still parses the answers we keep.

Answers are hostile input: a response can't exceed 65,535 bytes (the receive buffer and the TCP length
prefix stop there), every answer is capped at `max_records` values and TXT strings at `MAX_TXT_CHARS`.

Failures: `Resolver.query` raises `DNSFailure` (SERVFAIL/REFUSED/timeouts after every retry); the bulk
functions (`records`, `resolve_names`, `brute_force`) keep going and append one line per failure (summarised
past `MAX_FAILURE_LINES`) to the `warnings` list they are given, or log them when given none.

Timeouts: `timeout` is the longest wait for one answer, and the last try always gets it. Earlier tries give
up sooner, once the server's measured round trip (RFC 6298's estimator, at least MIN_RTO) says the datagram
was lost, so a lost packet costs its worker well under a second rather than the whole timeout.
`Resolver.stats` counts UDP/TCP queries, timeouts and failures.

Sockets need a selector event loop (the default on Linux and macOS; uvloop works too).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import socket
import string
import struct
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).with_name("data")
BUILTIN_WORDLIST = DATA_DIR / "subdomains.txt"
TAKEOVER_FILE = DATA_DIR / "takeover.toml"

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT")
EDNS_PAYLOAD = 1232  # DNS flag day 2020: no IP fragmentation; anything bigger comes back truncated and goes to TCP
MAX_RESPONSE_BYTES = 65535  # the largest DNS message there is
MAX_TXT_CHARS = 2048
MAX_CHAIN = 8  # CNAME hops followed before giving up (loops, hostile chains)
PROGRESS_EVERY = 100  # names between progress() calls
MAX_FAILURE_LINES = 10  # per bulk call; the rest are counted in one summary line
WILDCARD_PROBES = 3
# The shortest wait before a retry, however fast the server has been: a recursive resolver answers cached
# names in milliseconds but may need a few hundred to recurse for a new one; retrying sooner just doubles load.
MIN_RTO = 0.5

Progress = Callable[[int, int], object]

_RD = 0x0100  # recursion desired: recursive resolvers need it, authoritative servers ignore it
_OPT = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)
_RETRYABLE = {dns.rcode.SERVFAIL, dns.rcode.REFUSED}  # another try (or another nameserver) may do better
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NAME_CHARS = re.compile(r"[!-\[\]-~]+")  # printable ASCII but the backslash (no zone-file escapes)


class ResolverError(ValueError):
    """A resolver spec (setting or argument) is unusable; the message says which and why."""


class DNSFailure(Exception):
    """A lookup got no usable answer after every retry (SERVFAIL, REFUSED, timeouts, a dead server)."""

    def __init__(self, name: str, rdtype: str, reason: str) -> None:
        super().__init__(f"{rdtype} {name}: {reason}")
        self.name = name
        self.rdtype = rdtype
        self.reason = reason


# --- resolvers --------------------------------------------------------------------------------------------


def parse_resolver(spec: str) -> tuple[str, int]:
    """ "1.1.1.1" -> ("1.1.1.1", 53); "127.0.0.1:5353"; "[::1]:53"; a bare IPv6 address gets port 53."""
    text = spec.strip()
    if not text:
        raise ResolverError("empty resolver; expected HOST[:PORT] such as 1.1.1.1 or 127.0.0.1:5353")
    if not (text.isascii() and text.isprintable()):  # ipaddress takes any IPv6 zone: "fe80::1%\x00é"
        raise ResolverError(f"resolver {spec!r}: expected an IP address and port in plain ASCII, e.g. 127.0.0.1:5353")
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ResolverError(f"resolver {spec!r}: expected [IPv6]:PORT such as [::1]:53")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:  # IPv4:port (a bare IPv6 address has several colons)
        host, port_text = text.split(":")
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ResolverError(
            f"resolver {spec!r}: {host!r} is not an IP address (nameservers are given by address, "
            "e.g. 1.1.1.1, 127.0.0.1:5353 or [2606:4700:4700::1111]:53)"
        ) from None
    port = 53
    if port_text is not None:
        # isdigit() alone lets "²" (int() refuses it) and 5,000-digit numbers (int() refuses those too) through.
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
            raise ResolverError(f"resolver {spec!r}: port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return str(address), port


def system_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """The `nameserver` lines of resolv.conf (what the machine itself uses)."""
    found: list[tuple[str, int]] = []
    try:
        lines = resolv_conf.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise ResolverError(f"no RESOLVERS set and {resolv_conf} is unreadable: {exc.strerror or exc}") from None
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            with contextlib.suppress(ResolverError):
                found.append(parse_resolver(words[1]))  # a link-local address keeps its %interface
    if not found:
        raise ResolverError(f"no RESOLVERS set and no nameserver in {resolv_conf}")
    return list(dict.fromkeys(found))


def resolvers_from_settings() -> list[tuple[str, int]]:
    """The RESOLVERS setting parsed; when it is empty, the system's nameservers."""
    from app.settings import get_settings

    specs = [s for s in get_settings().resolvers.split(",") if s.strip()]
    if not specs:
        return system_resolvers()
    return list(dict.fromkeys(parse_resolver(s) for s in specs))


# --- names ------------------------------------------------------------------------------------------------


def normalise_name(name: str) -> str:
    """Lower-case, no trailing dot, IDN as punycode; ValueError for something that can't be a DNS name."""
    text = name.strip().rstrip(".").lower()
    if not text.isascii():
        try:
            text = dns.name.from_unicode(text).to_text(omit_final_dot=True).lower()
        except (dns.exception.DNSException, UnicodeError) as exc:
            raise ValueError(f"invalid DNS name {name!r}: {exc}") from None
    # Checked by hand: dns.name.from_text was a third of brute force's CPU time.
    if not text or len(text) > 253:
        raise ValueError(f"invalid DNS name {name!r}: {'empty' if not text else 'longer than 253 characters'}")
    if not _NAME_CHARS.fullmatch(text):
        raise ValueError(f"invalid DNS name {name!r}: spaces, control characters or escapes")
    if any(not 0 < len(label) < 64 for label in text.split(".")):
        raise ValueError(f"invalid DNS name {name!r}: empty label or label longer than 63 characters")
    return text


def _rdata_text(rdata: Any, max_chars: int = MAX_TXT_CHARS) -> str:
    """One record's value as the rest of AssetMon stores it (dnspython rdata classes are duck-typed)."""
    rdtype = rdata.rdtype
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rdata.address
    if rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.DNAME):
        return rdata.target.to_text(omit_final_dot=True).lower()
    if rdtype == dns.rdatatype.MX:
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True).lower()}"
    if rdtype in (dns.rdatatype.TXT, dns.rdatatype.SPF):
        joined = b"".join(rdata.strings)  # long TXT (SPF, DKIM keys) comes split in 255-byte strings
        return joined[: max_chars * 4].decode("utf-8", "backslashreplace")[:max_chars]
    if rdtype == dns.rdatatype.SRV:
        target = rdata.target.to_text(omit_final_dot=True).lower()
        return f"{rdata.priority} {rdata.weight} {rdata.port} {target}"
    return rdata.to_text()[:max_chars]


# --- transport --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One lookup's outcome. `cnames` is the chain followed from `name` (first = its own CNAME)."""

    name: str
    rdtype: str
    rcode: str  # "NOERROR" or "NXDOMAIN"; NXDOMAIN with a chain means the *target* does not exist
    values: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.rcode == "NOERROR" or bool(self.cnames)


class _Malformed(Exception):
    pass


class _UdpChannel:
    """One connected, non-blocking UDP socket; many queries in flight, answers matched by ID and question."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: tuple[str, int]) -> None:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            with contextlib.suppress(OSError):  # bursts of answers must not overflow the default ~200 KiB
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            # connect(): the kernel drops datagrams from any other address and reports ICMP errors to us.
            self.sock.connect(server)
            loop.add_reader(self.sock.fileno(), self._readable)
        except BaseException:
            self.sock.close()
            raise
        self.loop = loop
        self.pending: dict[int, tuple[asyncio.Future[bytes], bytes]] = {}
        self._buffer = bytearray(MAX_RESPONSE_BYTES)

    async def ask(self, question: bytes, timeout: float) -> bytes:
        qid = secrets.randbits(16)
        while qid in self.pending:
            qid = secrets.randbits(16)
        future: asyncio.Future[bytes] = self.loop.create_future()
        self.pending[qid] = (future, question)
        try:
            wire = struct.pack("!HHHHHH", qid, _RD, 1, 0, 0, 1) + question + _OPT
            try:
                try:
                    self.sock.send(wire)
                except BlockingIOError:  # send buffer full: wait for room rather than failing the attempt
                    await self.loop.sock_sendall(self.sock, wire)
            except OSError as exc:
                # An ICMP error (port unreachable) surfaces on the socket's next call, often another query's
                # send, and concerns every query in flight here: fail them all, this one included.
                self._fail_all(exc)
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if self.pending.get(qid, (None,))[0] is future:
                del self.pending[qid]

    def _readable(self) -> None:
        view = memoryview(self._buffer)
        while True:  # drain everything queued: one wake-up, many answers
            try:
                size = self.sock.recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # A connected UDP socket learns of ICMP errors (port unreachable: nothing listens) without
                # knowing which query caused them; fail them all so they retry now instead of timing out.
                self._fail_all(exc)
                return
            if size < 12 or not self._buffer[2] & 0x80:  # too short, or a query rather than a response
                continue
            entry = self.pending.get((self._buffer[0] << 8) | self._buffer[1])
            if entry is None or entry[0].done() or not _same_question(view[12:size], entry[1]):
                continue  # late (timed out), duplicate, or forged
            del self.pending[(self._buffer[0] << 8) | self._buffer[1]]
            entry[0].set_result(bytes(view[:size]))

    def _fail_all(self, exc: BaseException) -> None:
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(exc)
        self.pending.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the loop may already be closed
            self.loop.remove_reader(self.sock.fileno())
        with contextlib.suppress(RuntimeError):
            self._fail_all(ConnectionAbortedError("resolver closed"))
        self.sock.close()


def _same_question(after_header: memoryview | bytes, question: bytes) -> bool:
    """The answer repeats our question; the name may come back in other letter case."""
    echoed = bytes(after_header[: len(question)])
    return echoed[:-4].lower() == question[:-4] and echoed[-4:] == question[-4:]


def _question(name: str, rdtype: int) -> bytes:
    """The question section for a name normalise_name() has checked."""
    labels = b"".join(bytes((len(label),)) + label for label in name.encode("ascii").split(b"."))
    return labels + b"\x00" + struct.pack("!HH", rdtype, dns.rdataclass.IN)


async def _ask_tcp(server: tuple[str, int], question: bytes, timeout: float) -> bytes:
    qid = secrets.randbits(16)
    wire = struct.pack("!HHHHHH", qid, _RD, 1, 0, 0, 1) + question + _OPT
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(server[0], server[1])
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            while True:  # the length prefix is 16 bits: nothing over 64 KiB can arrive
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(size)
                if size >= 12 and data[:2] == wire[:2] and _same_question(data[12:], question):
                    return data
        finally:
            writer.close()


class _Rtt:
    """Smoothed round trip to one server and the retransmission timeout it implies (RFC 6298's estimator)."""

    __slots__ = ("srtt", "rttvar")

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0

    def sample(self, seconds: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - seconds)
            self.srtt = 0.875 * self.srtt + 0.125 * seconds

    def rto(self, ceiling: float) -> float:
        if self.srtt is None:  # nothing measured yet: no reason to give up early
            return ceiling
        return min(ceiling, max(MIN_RTO, self.srtt + 4 * self.rttvar))


@dataclass
class _LoopState:
    """Everything bound to one event loop: sockets, the concurrency semaphore."""

    loop: asyncio.AbstractEventLoop
    semaphore: asyncio.Semaphore
    channels: dict[tuple[str, int], list[_UdpChannel]] = field(default_factory=dict)
    turn: int = 0

    def close(self) -> None:
        for pool in self.channels.values():
            for channel in pool:
                channel.close()
        self.channels.clear()


class Resolver:
    """A stub resolver over explicit nameservers. Every argument left None comes from settings.

    Use as `async with Resolver(...) as r:` (or call `aclose()`) so its sockets close with the job.
    """

    def __init__(
        self,
        nameservers: Sequence[str | tuple[str, int]] | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        concurrency: int | None = None,
        max_records: int | None = None,
    ) -> None:
        if None in (timeout, retries, concurrency, max_records):
            from app.settings import get_settings

            settings = get_settings()
            timeout = settings.dns_timeout_seconds if timeout is None else timeout
            retries = settings.dns_retries if retries is None else retries
            concurrency = settings.dns_concurrency if concurrency is None else concurrency
            max_records = settings.dns_max_records if max_records is None else max_records
        if nameservers is None:
            servers = resolvers_from_settings()
        else:
            servers = [parse_resolver(s) if isinstance(s, str) else (str(s[0]), int(s[1])) for s in nameservers]
        if not servers:
            raise ResolverError("no nameservers given")
        self.nameservers: list[tuple[str, int]] = list(dict.fromkeys(servers))
        self.timeout = float(timeout or 0)
        self.retries = max(0, int(retries or 0))
        self.concurrency = max(1, int(concurrency or 1))
        self.max_records = max(1, int(max_records or 1))
        if self.timeout <= 0:
            raise ValueError("DNS timeout must be positive")
        # Several sockets per server: more receive buffer for bursts, more source ports for a forger to guess.
        self._pool_size = min(16, max(1, self.concurrency // 100))
        self._state: _LoopState | None = None
        self._next_server = 0
        # What happened on the wire, for logs and benchmarks: a timeout is a query (or answer) lost.
        self.stats: Counter[str] = Counter()
        self._rtt: dict[tuple[str, int], _Rtt] = {}

    def __repr__(self) -> str:
        servers = ",".join(f"{h}:{p}" for h, p in self.nameservers)
        return f"Resolver({servers}, timeout={self.timeout}, retries={self.retries}, concurrency={self.concurrency})"

    async def __aenter__(self) -> Resolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            if self._state is not None:  # used from a new loop (another asyncio.run): start afresh
                self._state.close()
            self._state = _LoopState(loop, asyncio.Semaphore(self.concurrency))
        return self._state

    def _channel(self, state: _LoopState, server: tuple[str, int]) -> _UdpChannel:
        pool = state.channels.get(server)
        if pool is None:
            pool = state.channels[server] = [_UdpChannel(state.loop, server) for _ in range(self._pool_size)]
        state.turn += 1
        return pool[state.turn % len(pool)]

    async def query(self, name: str, rdtype: str) -> list[str]:
        """Values of `rdtype` for `name` (following CNAMEs); [] for NXDOMAIN or no such record."""
        return list((await self.lookup(name, rdtype)).values)

    async def lookup(self, name: str, rdtype: str) -> Answer:
        """Like `query`, with the rcode and the CNAME chain. Raises DNSFailure, or ValueError for a bad name."""
        qname = normalise_name(name)
        rdtype = rdtype.upper()
        qtype = dns.rdatatype.from_text(rdtype)
        state = self._loop_state()
        async with state.semaphore:
            chain: list[str] = []
            current = qname
            for _ in range(MAX_CHAIN):
                rcode, values, cnames = await self._exchange(state, current, rdtype, qtype)
                chain.extend(cnames)
                # An authoritative server leaves an out-of-zone CNAME target to us; a recursive one has
                # already followed it (then this just stops).
                if values or rcode != "NOERROR" or not cnames or qtype == dns.rdatatype.CNAME:
                    break
                if cnames[-1] in chain[:-1] or cnames[-1] == qname:
                    break  # a loop
                try:
                    current = normalise_name(cnames[-1])
                except ValueError:
                    break  # a target no query can carry (hostile or broken zone): the chain ends here
            return Answer(qname, rdtype, rcode, tuple(values[: self.max_records]), tuple(chain[:MAX_CHAIN]))

    async def _exchange(
        self, state: _LoopState, name: str, rdtype: str, qtype: dns.rdatatype.RdataType
    ) -> tuple[str, list[str], list[str]]:
        question = _question(name, qtype)
        reasons: list[str] = []
        first = self._next_server
        self._next_server += 1  # spread load: each query starts at the next server, retries rotate on
        for attempt in range(self.retries + 1):
            server = self.nameservers[(first + attempt) % len(self.nameservers)]
            where = f"{server[0]}:{server[1]}" if ":" not in server[0] else f"[{server[0]}]:{server[1]}"
            rtt = self._rtt.setdefault(server, _Rtt())
            # The last try waits the full timeout (a slow server still gets its chance); earlier ones give
            # up once the server's measured round trip says the packet was lost, so one lost datagram costs
            # a fraction of a second instead of stalling its worker for the whole timeout.
            wait = self.timeout if attempt == self.retries else min(self.timeout, rtt.rto(self.timeout) * 2**attempt)
            try:
                self.stats["udp"] += 1
                sent = state.loop.time()
                wire = await self._channel(state, server).ask(question, wait)
                rtt.sample(state.loop.time() - sent)
                if wire[2] & 0x02:  # truncated: the whole answer only comes over TCP
                    self.stats["tcp"] += 1
                    wire = await _ask_tcp(server, question, self.timeout)
                rcode = wire[3] & 0x0F
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return self._parse(wire, name, qtype)
                reasons.append(f"{dns.rcode.to_text(dns.rcode.Rcode(rcode))} from {where}")
                if rcode not in _RETRYABLE:
                    break
            except TimeoutError:
                self.stats["timeouts"] += 1
                reasons.append(f"no answer from {where}")
            except (OSError, EOFError) as exc:  # refused, unreachable, connection reset (TCP)
                reasons.append(f"{where}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}")
            except _Malformed as exc:
                reasons.append(f"malformed answer from {where}: {exc}")
        summary = "; ".join(dict.fromkeys(reasons))
        tries = len(reasons)
        self.stats["failures"] += 1
        raise DNSFailure(
            name, rdtype, f"{summary} ({tries} {'try' if tries == 1 else 'tries'}, timeout {self.timeout:g}s)"
        )

    def _parse(self, wire: bytes, name: str, qtype: dns.rdatatype.RdataType) -> tuple[str, list[str], list[str]]:
        rcode = "NXDOMAIN" if wire[3] & 0x0F == dns.rcode.NXDOMAIN else "NOERROR"
        if wire[6:8] == b"\x00\x00":  # no answer records: the common brute-force case, no parsing needed
            return rcode, [], []
        try:
            message = dns.message.from_wire(wire, ignore_trailing=True)
        except Exception as exc:  # dnspython raises many types for garbage; none of them may escape
            raise _Malformed(str(exc) or type(exc).__name__) from None
        owner = dns.name.from_text(name)
        cnames: list[str] = []
        for _ in range(MAX_CHAIN):
            rrset = message.get_rrset(message.answer, owner, dns.rdataclass.IN, qtype)
            if rrset is not None:
                values = list(dict.fromkeys(_rdata_text(r) for r in list(rrset)[: self.max_records]))
                return rcode, values, cnames
            if qtype == dns.rdatatype.CNAME:
                break
            alias = message.get_rrset(message.answer, owner, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if alias is None or len(alias) == 0:
                break
            first: Any = alias[0]
            owner = first.target
            target = owner.to_text(omit_final_dot=True).lower()
            if target in cnames:
                break
            cnames.append(target)
        return rcode, [], cnames


# --- bulk helpers -----------------------------------------------------------------------------------------


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


# --- records and names ------------------------------------------------------------------------------------


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


# --- wildcards and brute force ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    exists: bool
    addresses: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()


async def _addresses(resolver: Resolver, name: str) -> _Found:
    """A, or AAAA when there is no A: one query for the NXDOMAIN that most brute-force names get."""
    a = await resolver.lookup(name, "A")
    if not a.exists:
        return _Found(False)
    if a.values or a.rcode == "NXDOMAIN":
        return _Found(True, a.values, a.cnames)
    aaaa = await resolver.lookup(name, "AAAA")
    return _Found(True, aaaa.values, a.cnames or aaaa.cnames)


def random_label(length: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


@dataclass(frozen=True)
class _Wildcard:
    present: bool  # random names exist (even with no address: a wildcard of other types)
    answers: frozenset[str] = frozenset()  # addresses and CNAME targets random names got
    targets: frozenset[str] = frozenset()  # the CNAME targets alone

    def synthesised(self, found: _Found) -> bool:
        """Could this answer have come from the wildcard? Then we can't tell the name is real."""
        if not self.present:
            return False
        if not found.addresses and not found.cnames:
            # No address, like the wildcard's own answer? A wildcard with addresses would have given them.
            return not self.answers
        if found.cnames and found.cnames[0] in self.targets:
            return True  # same alias: the addresses behind it may rotate (CDNs)
        return set(found.addresses) | set(found.cnames) <= self.answers


async def _probe(resolver: Resolver, zone: str, probes: int) -> _Wildcard:
    names = [f"{random_label()}.{zone}" for _ in range(max(1, probes))]
    lookups = await _all([resolver.lookup(n, t) for n in names for t in ("A", "AAAA")])
    present = any(a.exists for a in lookups)
    answers = {v for a in lookups for v in (*a.values, *a.cnames)}
    targets = {a.cnames[0] for a in lookups if a.cnames}
    return _Wildcard(present, frozenset(answers), frozenset(targets))


async def wildcard_answers(resolver: Resolver, zone: str, probes: int = WILDCARD_PROBES) -> set[str]:
    """Addresses (A, AAAA) and CNAME targets that random names under `zone` get; empty if there is no wildcard.

    Raises DNSFailure when the probes get no answer at all.
    """
    return set((await _probe(resolver, normalise_name(zone), probes)).answers)


async def brute_force(
    resolver: Resolver,
    domain: str,
    labels: Iterable[str],
    progress: Progress | None = None,
    *,
    warnings: list[str] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """Try `label.domain` for every label: ({name: addresses}, wildcard zones found).

    Under a wildcard zone a name is kept only if its answer differs from the wildcard's (a real host that
    shares the wildcard's address is indistinguishable and dropped). A name that exists without an address
    (a dangling CNAME, an empty non-terminal) is kept with [] outside wildcard zones. Each name found is
    probed once more for a wildcard of its own (*.dev.example.com), which is listed too.

    Raises DNSFailure if the zone itself can't be probed (a dead resolver): there'd be nothing to trust.
    """
    zone = normalise_name(domain)
    wildcard = await _probe(resolver, zone, WILDCARD_PROBES)
    failures = _Failures()
    candidates: dict[str, None] = {}
    for label in labels:
        try:
            candidates.setdefault(normalise_name(f"{label}.{zone}"), None)
        except ValueError as exc:
            failures.add(str(exc))
    found: dict[str, list[str]] = {}

    async def one(name: str) -> None:
        try:
            result = await _addresses(resolver, name)
        except DNSFailure as exc:
            failures.add(str(exc))
            return
        if not result.exists or wildcard.synthesised(result):
            return
        found[name] = list(result.addresses)

    zones = [zone] if wildcard.present else []
    sub_zones: set[str] = set()

    async def probe_below(name: str) -> None:
        try:
            if (await _probe(resolver, name, 1)).present:
                sub_zones.add(name)
        except DNSFailure as exc:
            failures.add(f"wildcard probe under {name}: {exc}")

    try:
        await _run_all(list(candidates), one, resolver.concurrency, progress)
        await _run_all(sorted(found), probe_below, resolver.concurrency, None)
    finally:
        failures.report(warnings)
    return dict(sorted(found.items())), zones + sorted(sub_zones)


# --- wordlist ---------------------------------------------------------------------------------------------


def _label_ascii(label: str) -> str | None:
    text = label.strip().lower()
    if not text.isascii():
        try:
            text = dns.name.IDNA_DEFAULT.encode(text).decode("ascii").lower()
        except (dns.exception.DNSException, UnicodeError):
            return None
    return text if _LABEL.fullmatch(text) else None


def load_wordlist(path: Path | None = None) -> list[str]:
    """Labels for brute force, one a line: `path`, else WORDLIST_FILE, else the shipped list.

    Lines are lower-cased, IDN labels become punycode, "a.b" entries are allowed; blank lines, `#` comments,
    invalid labels and duplicates are skipped (the count is logged).
    """
    if path is None:
        from app.settings import get_settings

        path = get_settings().wordlist_file or BUILTIN_WORDLIST
    words: dict[str, None] = {}
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.strip().rstrip(".")
            if not text or text.startswith("#"):
                continue
            labels = [_label_ascii(part) for part in text.split(".")]
            if len(text) > 200 or not all(labels):
                skipped += 1
                continue
            words.setdefault(".".join(label for label in labels if label), None)
    if skipped:
        log.info("wordlist %s: %d invalid lines skipped", path, skipped)
    return list(words)


# --- subdomain takeover -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakeoverProvider:
    name: str
    status: str  # "vulnerable" or "edge case" (as can-i-take-over-xyz rates it)
    patterns: tuple[str, ...]
    reference: str = ""
    note: str = ""


def _suffix_key(host: str) -> str:
    return ".".join(host.rsplit(".", 2)[-2:])


@lru_cache
def load_takeover_providers(path: Path = TAKEOVER_FILE) -> dict[str, tuple[tuple[str, TakeoverProvider], ...]]:
    """Patterns indexed by their last two labels (the cheap prefilter); every example is checked on load."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    index: dict[str, list[tuple[str, TakeoverProvider]]] = {}
    for entry in data.get("provider", []):
        name = entry.get("name", "?")
        patterns = tuple(p.lower() for p in entry.get("patterns", []))
        if entry.get("status") not in ("vulnerable", "edge case") or not patterns:
            raise ValueError(f"{path}: provider {name!r} needs patterns and status 'vulnerable' or 'edge case'")
        provider = TakeoverProvider(name, entry["status"], patterns, entry.get("reference", ""), entry.get("note", ""))
        for pattern in patterns:
            if "*" in _suffix_key(pattern) or not pattern.startswith("*."):
                raise ValueError(f"{path}: provider {name!r}: pattern {pattern!r} must be *.<literal suffix>")
            index.setdefault(_suffix_key(pattern), []).append((pattern, provider))
        for example in entry.get("examples", []):
            if not any(fnmatchcase(example, p) for p in patterns):
                raise ValueError(f"{path}: provider {name!r}: example {example!r} matches no pattern")
        for example in entry.get("not_examples", []):
            if any(fnmatchcase(example, p) for p in patterns):
                raise ValueError(f"{path}: provider {name!r}: counter-example {example!r} matches a pattern")
    return {key: tuple(value) for key, value in index.items()}


def takeover_provider(cname_target: str) -> TakeoverProvider | None:
    """The provider whose namespace `cname_target` is in, if it is one that allows claiming names."""
    target = cname_target.strip().rstrip(".").lower()
    for pattern, provider in load_takeover_providers().get(_suffix_key(target), ()):
        if fnmatchcase(target, pattern):
            return provider
    return None


def takeover_candidate(cname_target: str, resolves: bool) -> str | None:
    """The provider's name when a CNAME points into a claimable namespace and the target does not resolve."""
    if resolves:
        return None
    provider = takeover_provider(cname_target)
    return provider.name if provider else None


async def takeover_check(resolver: Resolver, cname_target: str) -> str | None:
    """takeover_candidate() with the resolving done: only provider targets cost a lookup (NXDOMAIN = dangling).

    Raises DNSFailure when the target can't be checked (better a warning than a false "safe").
    """
    if takeover_provider(cname_target) is None:
        return None
    answer = await resolver.lookup(cname_target, "A")
    return takeover_candidate(cname_target, resolves=answer.rcode != "NXDOMAIN")
