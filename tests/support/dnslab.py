"""A DNS lab: an authoritative server on 127.0.0.1 (UDP and TCP, one free port) serving a zone from a dict.

    lab = DNSLab("lab.test", {
        "www": {"A": ["127.0.0.10"]},
        "alias": {"CNAME": ["www.lab.test"]},
        "@": {"MX": ["10 mail.lab.test"], "TXT": ["v=spf1 -all"]},
        "*.wild": {"A": ["127.0.0.99"]},                   # wildcard: anything.wild.lab.test
        "ghost.example.net.": {"A": ["127.0.0.5"]},        # a trailing dot: an absolute, out-of-zone name
    }).start()
    Resolver([lab.address]) ...
    lab.stop()

It answers like an authoritative server that also chases CNAMEs through every name it knows: NXDOMAIN for
unknown names (in the zone or out of it, so `ghost-app.herokuapp.com` is dangling without the internet),
NODATA for empty non-terminals, wildcards by closest encloser (RFC 4592), TC set when a UDP answer is
bigger than the client's EDNS size (512 without EDNS) so the client must come back over TCP.

Faults, settable before or while running: `delays` {name: seconds}, `drop_first` {name: UDP queries to
ignore}, `loss` (fraction of UDP queries ignored, seeded), `servfail` {names}. Every query is logged in
`log`. Used by tests/scanners/test_dns.py, bench/dns_bench.py and the recon lab. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from dataclasses import dataclass

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord

NAME_TYPES = {"CNAME", "NS", "PTR", "DNAME"}  # values that are a single domain name
NAME_LAST = {"MX", "SRV"}  # values whose last word is a domain name


@dataclass(frozen=True)
class Query:
    name: str  # lower-case, no trailing dot
    qtype: str
    transport: str  # "udp" or "tcp"
    answered: bool  # False when the lab dropped it


def _absolute(value: str) -> str:
    return value if value.endswith(".") else value + "."


class DNSLab:
    """One zone (plus any absolute names) served on `address`; `start()`/`stop()` or use as a context manager."""

    def __init__(
        self,
        zone: str = "lab.test",
        records: dict[str, dict[str, list[str]]] | None = None,
        *,
        host: str = "127.0.0.1",
        ttl: int = 60,
        delays: dict[str, float] | None = None,
        drop_first: dict[str, int] | None = None,
        loss: float = 0.0,
        seed: int = 0,
        servfail: set[str] | None = None,
        chase_cnames: bool = True,
    ) -> None:
        self.zone = zone.lower().rstrip(".")
        self.host = host
        self.ttl = ttl
        self.delays = {self._fqdn(k): v for k, v in (delays or {}).items()}
        self.drop_first = {self._fqdn(k): v for k, v in (drop_first or {}).items()}
        self.loss = loss
        self.servfail = {self._fqdn(k) for k in (servfail or set())}
        self.chase_cnames = chase_cnames  # False: answer a CNAME alone, like a server without the target
        self.log: list[Query] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.rrs: dict[str, dict[str, list[RR]]] = {}
        self._ents: set[str] = set()  # empty non-terminals: names that exist only because names below them do
        data = dict(records or {})
        apex = data.setdefault("@", {})
        apex.setdefault("SOA", [f"ns1.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 60"])
        apex.setdefault("NS", [f"ns1.{self.zone}"])
        for name, types in data.items():
            self.add(name, types)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- zone data ----------------------------------------------------------------------------------------

    def _fqdn(self, name: str) -> str:
        name = name.lower()
        if name.endswith("."):
            return name.rstrip(".")
        if name in ("@", ""):
            return self.zone
        return f"{name}.{self.zone}"

    def add(self, name: str, types: dict[str, list[str]]) -> None:
        """Add (or replace) records of a name: relative to the zone, "@" for the apex, absolute with a dot."""
        fqdn = self._fqdn(name)
        node: dict[str, list[RR]] = {}
        for rtype, values in types.items():
            rtype = rtype.upper()
            rrs: list[RR] = []
            for value in values:
                if rtype in NAME_TYPES:
                    value = _absolute(value)
                elif rtype in NAME_LAST:
                    *head, last = value.split()
                    value = " ".join([*head, _absolute(last)])
                elif rtype == "TXT" and not value.startswith('"'):  # plain text: strings of 255 at most
                    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
                    value = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
                rrs.extend(RR.fromZone(f"{fqdn}. {self.ttl} IN {rtype} {value}"))
            node[rtype] = rrs
        with self._lock:
            self.rrs[fqdn] = node
            parent = fqdn
            while "." in parent and parent != self.zone:
                parent = parent.split(".", 1)[1]
                self._ents.add(parent)

    def delay(self, name: str, seconds: float) -> None:
        """Answer queries for `name` (relative or absolute, like `add`) `seconds` late."""
        self.delays[self._fqdn(name)] = seconds

    def drop(self, name: str, count: int = 1) -> None:
        """Ignore the next `count` UDP queries for `name` (TCP is never dropped: it would just hang)."""
        with self._lock:
            self.drop_first[self._fqdn(name)] = count

    def _node(self, name: str) -> dict[str, list[RR]] | None:
        """The records at `name`: its own, {} for an empty non-terminal, a wildcard's, or None (NXDOMAIN)."""
        if name in self.rrs:
            return self.rrs[name]
        if name in self._ents:
            return {}
        encloser = name
        while "." in encloser:  # closest encloser: the nearest existing ancestor
            encloser = encloser.split(".", 1)[1]
            if encloser in self.rrs or encloser in self._ents:
                return self.rrs.get(f"*.{encloser}")
        return None

    def resolve(self, qname: str, qtype: str) -> tuple[int, list[RR]]:
        """(rcode, answer records) as this server answers, chasing CNAMEs through names it knows."""
        name = qname.lower().rstrip(".")
        answers: list[RR] = []
        seen: set[str] = set()
        while name not in seen and len(seen) < 8:
            seen.add(name)
            if name in self.servfail:
                return RCODE.SERVFAIL, []
            node = self._node(name)
            if node is None:
                return RCODE.NXDOMAIN, answers
            if qtype in node:
                answers.extend(self._owned(rr, name) for rr in node[qtype])
                break
            if "CNAME" in node and qtype != "CNAME":
                alias = node["CNAME"][0]
                answers.append(self._owned(alias, name))
                name = str(alias.rdata.label).lower().rstrip(".")
                if not self.chase_cnames:
                    break
                continue
            break  # NODATA
        return RCODE.NOERROR, answers

    @staticmethod
    def _owned(rr: RR, name: str) -> RR:
        """A record under the name asked (wildcard answers carry the query name, not `*`)."""
        if str(rr.rname).lower().rstrip(".") == name:
            return rr
        return RR(name + ".", rr.rtype, rr.rclass, rr.ttl, rr.rdata)

    # --- wire ---------------------------------------------------------------------------------------------

    def answer(self, data: bytes, transport: str) -> bytes | None:
        """The response to one query, or None to drop it (simulated loss)."""
        try:
            request = DNSRecord.parse(data)
        except Exception:  # garbage in: a real server stays silent
            return None
        question = request.q
        name = str(question.qname).lower().rstrip(".")
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        dropped = False
        if transport == "udp":
            with self._lock:
                if self.drop_first.get(name, 0) > 0:
                    self.drop_first[name] -= 1
                    dropped = True
                elif self.loss and self._random.random() < self.loss:
                    dropped = True
        self.log.append(Query(name, qtype, transport, not dropped))
        if dropped:
            return None
        rcode, answers = self.resolve(name, qtype)
        reply = request.reply()
        reply.header.rcode = rcode
        for rr in answers:
            reply.add_answer(rr)
        if rcode != RCODE.SERVFAIL and not answers:
            reply.add_auth(self.rrs[self.zone]["SOA"][0])
        edns = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if edns is not None:
            reply.add_ar(EDNS0(udp_len=4096))
        wire = reply.pack()
        limit = max(512, edns.rclass) if edns is not None else 512
        if transport == "udp" and len(wire) > limit:
            short = request.reply()
            short.header.rcode = rcode
            short.header.tc = 1
            wire = short.pack()
        return wire

    def queries(self, name: str | None = None, transport: str | None = None) -> list[Query]:
        """Logged queries, optionally for one name (relative or absolute like `add`) and transport."""
        fqdn = self._fqdn(name) if name is not None else None
        return [q for q in self.log if (fqdn is None or q.name == fqdn) and (transport in (None, q.transport))]

    # --- serving ------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        for _ in range(50):  # the UDP port picked may be taken for TCP: try another
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            udp.bind((self.host, 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(64)
            return udp, tcp
        raise OSError("no free port for both UDP and TCP")

    def start(self) -> DNSLab:
        udp_sock, tcp_sock = self._bind()
        self.port = udp_sock.getsockname()[1]
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(udp_sock, tcp_sock, ready), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("DNS lab did not start")
        return self

    def _serve(self, udp_sock: socket.socket, tcp_sock: socket.socket, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        lab = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                wire = lab.answer(data, "udp")
                if wire is None:
                    return
                delay = lab.delays.get(str(_qname(data)), 0.0)
                if delay:
                    loop.call_later(delay, self.transport.sendto, wire, addr)
                else:
                    self.transport.sendto(wire, addr)

        async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                    wire = lab.answer(data, "tcp")
                    if wire is None:
                        continue
                    if delay := lab.delays.get(str(_qname(data)), 0.0):
                        await asyncio.sleep(delay)
                    writer.write(len(wire).to_bytes(2, "big") + wire)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        async def open_servers() -> tuple[asyncio.BaseTransport, asyncio.AbstractServer]:
            transport, _ = await loop.create_datagram_endpoint(Udp, sock=udp_sock)
            server = await asyncio.start_server(tcp_client, sock=tcp_sock)
            return transport, server

        transport, server = loop.run_until_complete(open_servers())
        ready.set()
        try:
            loop.run_forever()
        finally:
            transport.close()
            server.close()
            with contextlib.suppress(Exception):
                loop.run_until_complete(server.wait_closed())
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> DNSLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _qname(data: bytes) -> str:
    """The question name straight from the wire (cheap; for per-name delays)."""
    labels, pos = [], 12
    while pos < len(data) and data[pos]:
        size = data[pos]
        labels.append(data[pos + 1 : pos + 1 + size].decode("ascii", "replace").lower())
        pos += 1 + size
    return ".".join(labels)
