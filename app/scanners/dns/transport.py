"""The DNS transport: a fast asyncio stub resolver over explicit nameservers.

Why not dnspython's `dns.asyncquery.udp`: it opens a socket per query, which caps brute force at a few
thousand names a second. Here each nameserver gets a small pool of long-lived connected UDP sockets and
answers are matched to queries by ID *and* question, so a late answer or a forged datagram for some other
query is dropped. dnspython still parses the answers we keep.

Answers are hostile input: a response can't exceed 65,535 bytes (the receive buffer and the TCP length
prefix stop there), every answer is capped at `max_records` values and TXT strings at `MAX_TXT_CHARS`.

Failures: `Resolver.query` raises `DNSFailure` (SERVFAIL/REFUSED/timeouts after every retry); the bulk
functions (lookups.py, bruteforce.py) keep going and report each failure as a warning.

Timeouts: `timeout` is the longest wait for one answer, and the last try always gets it. Earlier tries give
up sooner, once the server's measured round trip (RFC 6298's estimator, at least MIN_RTO) says the datagram
was lost, so a lost packet costs its worker well under a second rather than the whole timeout.
`Resolver.stats` counts UDP/TCP queries, timeouts and failures.

Sockets need a selector event loop (the default on Linux and macOS; uvloop works too).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from app.errors import DNSFailure, ResolverError
from app.scanners.dns.resolvers import parse_resolver, resolvers_from_settings
from app.settings import get_settings

EDNS_PAYLOAD = 1232  # DNS flag day 2020: no IP fragmentation; anything bigger comes back truncated and goes to TCP
MAX_RESPONSE_BYTES = 65535  # the largest DNS message there is
MAX_TXT_CHARS = 2048
MAX_CHAIN = 8  # CNAME hops followed before giving up (loops, hostile chains)
# The shortest wait before a retry, however fast the server has been: a recursive resolver answers cached
# names in milliseconds but may need a few hundred to recurse for a new one; retrying sooner just doubles load.
MIN_RTO = 0.5

_RD = 0x0100  # recursion desired: recursive resolvers need it, authoritative servers ignore it
_OPT = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)
_RETRYABLE = {dns.rcode.SERVFAIL, dns.rcode.REFUSED}  # another try (or another nameserver) may do better
_NAME_CHARS = re.compile(r"[!-\[\]-~]+")  # printable ASCII but the backslash (no zone-file escapes)


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


# --- the wire ---------------------------------------------------------------------------------------------


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
