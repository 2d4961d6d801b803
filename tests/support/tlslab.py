"""The recon lab's TLS and hostile servers.

Certificates are made at test time (a lab CA and leaves with the SANs asked for, optionally expired
or self-signed). `LabSite` is a `LabServer` that speaks HTTPS and records the Host header and TLS
server name of every request. The rest misbehave on purpose: drip bytes, redirect forever, send
endless or compressed-to-nothing bodies, speak garbage. Loopback only: every server binds a
127.0.0.x address on a free port; `.start()` / `.stop()` like `LabServer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
import socketserver
import ssl
import tempfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.weblab import LabServer, Route

LAB_NAMES = ("lab.test", "www.lab.test", "api.lab.test")
CA_NAME = "AssetMon Lab CA"
HANDSHAKE_TIMEOUT = 10.0  # a client that never finishes its handshake does not hold a thread for ever


# --- certificates ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabCert:
    cert_pem: bytes  # the leaf, then the CA that issued it (when there is one)
    key_pem: bytes
    der: bytes  # the leaf, as a client sees it
    ca_pem: bytes | None
    sans: tuple[str, ...]

    @property
    def fingerprint_sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        """A fresh server context (each server sets its own SNI callback on it)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # load_cert_chain only reads files: write them for a moment.
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            with open(cert, "wb") as f:
                f.write(self.cert_pem)
            with open(key, "wb") as f:
                f.write(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@lru_cache(maxsize=1)
def lab_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """One CA per test process (EC keys: generating them is instant)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(CA_NAME))
        .issuer_name(_name(CA_NAME))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=365))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_cert(sans: Sequence[str] = LAB_NAMES, *, expired: bool = False, self_signed: bool = False) -> LabCert:
    """A leaf certificate for `sans` (DNS names or IP addresses; the first is also the CN), issued by
    the lab CA, or signed by its own key when `self_signed`; `expired` puts its validity in the past."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(days=60), now - timedelta(days=30))
        if expired
        else (now - timedelta(days=1), now + timedelta(days=90))
    )
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    ca_key, ca_cert = lab_ca()
    issuer_key, issuer = (key, _name(sans[0])) if self_signed else (ca_key, ca_cert.subject)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(sans[0]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_pem = None if self_signed else ca_cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return LabCert(pem + (ca_pem or b""), key_pem, cert.public_bytes(serialization.Encoding.DER), ca_pem, tuple(sans))


# --- TLS on the server side -----------------------------------------------------------------------

# The handshake, and then the request handler, run in the connection's own thread (ThreadingMixIn):
# a thread-local carries the server name the client sent from the SNI callback to the handler.
_connection = threading.local()


def _tls_context(cert: LabCert) -> ssl.SSLContext:
    context = cert.server_context()

    def remember_sni(_sock: ssl.SSLSocket, server_name: str | None, _context: ssl.SSLContext) -> None:
        _connection.sni = server_name

    context.sni_callback = remember_sni
    return context


def _handshake(sock: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket | None:
    """The server side of a TLS handshake, done in the connection's thread (not the accept loop, which
    a client that never finishes its handshake would otherwise block); None when it fails."""
    _connection.sni = None
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        return context.wrap_socket(sock, server_side=True)
    except (ssl.SSLError, OSError):
        return None


def _speaks_tls(sock: socket.socket) -> bool:
    """Whether the client opened with a TLS handshake record (0x16), without consuming it."""
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        return sock.recv(1, socket.MSG_PEEK) == b"\x16"
    except OSError:
        return False


def _read_request(sock: socket.socket, limit: int = 64 << 10) -> bytes:
    """Read until the end of the request head (or the client stops sending)."""
    data = b""
    sock.settimeout(HANDSHAKE_TIMEOUT)
    while b"\r\n\r\n" not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk or (data + chunk)[:1] == b"\x16":
            break  # the client is gone, or speaks TLS: answer at once, as a plain HTTP server would
        data += chunk
    return data


NGINX_400 = (
    b"<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n"
    b"<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n"
    b"<center>The plain HTTP request was sent to HTTPS port</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    path: str
    host: str | None  # the Host header
    sni: str | None  # the TLS server name (None over plain HTTP, or when the client sent none)
    user_agent: str | None
    scheme: str


class LabSite(LabServer):
    """A LabServer that records what the probe must get right (Host header, SNI, User-Agent) in `seen`,
    sends no Server header of its own (only the one a route sets), and with `cert` speaks HTTPS.

    With a cert, `plain` says what a plain-HTTP client on the same port gets: None (the handshake fails,
    like most HTTPS servers), "serve" (the same routes: the port speaks both) or "reject" (nginx's
    "400 The plain HTTP request was sent to HTTPS port").
    """

    def __init__(self, host: str = "127.0.0.1", cert: LabCert | None = None, *, plain: str | None = None) -> None:
        super().__init__(host)
        self.cert = cert
        self.plain = plain
        self.seen: list[Seen] = []
        self.failed_handshakes = 0
        site = self
        base = self.server.RequestHandlerClass

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:
                sni, scheme = getattr(_connection, "sni", None), getattr(_connection, "scheme", "http")
                site.seen.append(Seen(self.path, self.headers.get("Host"), sni, self.headers.get("User-Agent"), scheme))
                super().do_GET()

            def send_response(self, code: int, message: str | None = None) -> None:
                # BaseHTTPRequestHandler adds "Server: BaseHTTP/0.6 Python/3.x"; the routes say what server we are.
                self.send_response_only(code, message)
                self.send_header("Date", self.date_time_string())

        self.server.RequestHandlerClass = Handler
        # LabServer polls for shutdown every 0.5 s; stopping many lab servers adds up.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        if cert is not None:
            self._context = _tls_context(cert)
            serve = self.server.finish_request
            # socketserver calls self.finish_request(request, address) in the connection's thread:
            # an instance attribute takes the place of the method.
            self.server.finish_request = lambda request, address: self._serve(request, address, serve)  # type: ignore[method-assign]

    def _serve(self, request: socket.socket, address: object, serve) -> None:
        _connection.sni, _connection.scheme = None, "http"
        if self.plain and not _speaks_tls(request):
            if self.plain == "reject":
                _read_request(request)
                head = f"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: {len(NGINX_400)}\r\nConnection: close\r\n\r\n"
                request.sendall(head.encode() + NGINX_400)
                return
            serve(request, address)
            return
        conn = _handshake(request, self._context)
        if conn is None:
            self.failed_handshakes += 1
            return
        _connection.scheme = "https"
        try:
            serve(conn, address)
        finally:
            conn.close()

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://{self.host}:{self.port}"


# --- hostile servers ------------------------------------------------------------------------------


class RawServer:
    """A threaded TCP server on 127.0.0.x running `serve(conn)` for each connection (after a TLS
    handshake when `cert` is given). Counts connections, and how many are still open, so tests can
    check that a client hung up."""

    def __init__(self, host: str = "127.0.0.1", cert: LabCert | None = None) -> None:
        lab = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                lab._handle(self.request)

        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_address[1]
        self.cert = cert
        self._context = _tls_context(cert) if cert else None
        self.stopping = threading.Event()
        self.connections = 0
        self.open = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://{self.host}:{self.port}"

    def _handle(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            self.open += 1
        try:
            conn = _handshake(sock, self._context) if self._context else sock
            if conn is not None:
                self.serve(conn)
        except OSError:
            pass  # the client went away: that is how most of these end
        finally:
            with self._lock:
                self.open -= 1

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def drip(self, conn: socket.socket, byte: bytes, interval: float) -> None:
        """Send one byte every `interval` seconds until the client hangs up or the server stops."""
        while not self.stopping.wait(interval):
            conn.sendall(byte)

    def start(self) -> RawServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class SlowLoris(RawServer):
    """Answers one byte at a time, fast enough that no single read ever times out.

    phase "headers": a status line, then a header that never ends; "body": complete headers, then a
    body that never ends; "handshake": (plain TCP, for a TLS client) a handshake record header
    announcing 16 KiB, then its bytes one by one.
    """

    def __init__(
        self, host: str = "127.0.0.1", cert: LabCert | None = None, *, phase: str = "headers", interval: float = 0.1
    ) -> None:
        super().__init__(host, cert)
        self.phase = phase
        self.interval = interval

    def serve(self, conn: socket.socket) -> None:
        if self.phase == "handshake":
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x40\x00")
        elif self.phase == "body":
            _read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nServer: drip\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n"
                b"<html><head><title>Dripping</title></head><body>"
            )
        else:
            _read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        self.drip(conn, b"a", self.interval)


class _EndlessRoutes(dict):
    """Every path redirects to the next one: /r/1, /r/2, ... (LabServer looks routes up with .get)."""

    def get(self, path: str, default: Route | None = None) -> Route:  # type: ignore[override]
        tail = path.rsplit("/", 1)[-1]
        step = int(tail) if path.startswith("/r/") and tail.isdigit() else 0
        return Route(b"", 302, {"Location": f"/r/{step + 1}"})


class RedirectLoop(LabSite):
    """mode "endless": a chain of redirects that never repeats a URL; "loop": / -> /a -> / -> ..."""

    def __init__(self, host: str = "127.0.0.1", cert: LabCert | None = None, *, mode: str = "endless") -> None:
        super().__init__(host, cert)
        if mode == "endless":
            self.routes = _EndlessRoutes()
        else:
            self.add("/", "", status=302, location="/a")
            self.add("/a", "", status=302, location="/")


# A raw deflate block of 1 MiB of zeros ending in a full flush: the compressor's state is reset after
# it, so the same bytes can follow themselves for ever. About 1,000:1.
_ZEROS = b"\0" * (1 << 20)
_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
BOMB_BLOCK = _compressor.compress(_ZEROS) + _compressor.flush(zlib.Z_FULL_FLUSH)
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


class HugeBody(RawServer):
    """A 200 MB body of zeros (declared, and streamed until the client hangs up), or with `gzip` an
    endless gzip stream of zeros: a few KiB on the wire per GiB decoded, no Content-Length."""

    def __init__(
        self, host: str = "127.0.0.1", cert: LabCert | None = None, *, size: int = 200 << 20, gzip: bool = False
    ) -> None:
        super().__init__(host, cert)
        self.size = size
        self.gzip = gzip
        self.bytes_sent = 0

    def serve(self, conn: socket.socket) -> None:
        _read_request(conn)
        if self.gzip:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nServer: bomb\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                b"Connection: close\r\n\r\n" + GZIP_HEADER
            )
            while not self.stopping.is_set():
                conn.sendall(BOMB_BLOCK)
                self.bytes_sent += len(BOMB_BLOCK)
            return
        conn.sendall(
            f"HTTP/1.1 200 OK\r\nServer: huge\r\nContent-Type: text/plain\r\nContent-Length: {self.size}\r\n\r\n".encode()
        )
        chunk = _ZEROS[: 64 << 10]
        sent = 0
        while sent < self.size and not self.stopping.is_set():
            conn.sendall(chunk[: self.size - sent])
            sent += len(chunk)
            self.bytes_sent = sent


class Garbage(RawServer):
    """Not HTTP, not TLS. mode "junk": answers binary junk and closes; "close": closes at once;
    "alert": answers a TLS fatal handshake_failure alert; "silent": reads and never answers."""

    JUNK = b"\x00\xff\x1b[31m\x07 SSH-2.0-not-http \xfe\r\n\r\n\x16\x03\x00\x00\x00garbage"

    def __init__(self, host: str = "127.0.0.1", *, mode: str = "junk") -> None:
        super().__init__(host)
        self.mode = mode

    def serve(self, conn: socket.socket) -> None:
        if self.mode == "close":
            return
        conn.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            conn.recv(4096)
        if self.mode == "junk":
            conn.sendall(self.JUNK)
        elif self.mode == "alert":
            conn.sendall(b"\x15\x03\x03\x00\x02\x02\x28")
        elif self.mode == "silent":
            while not self.stopping.is_set():
                try:
                    if not conn.recv(4096):
                        return
                except TimeoutError:
                    continue
