"""Local notification receivers for tests: an HTTP server that records POSTs and an SMTP server that keeps mail.

Both bind a loopback address only. The HTTP receiver answers from a plan of status codes (e.g. fail the
first N calls with 500) and records method, path, headers and raw body of every request.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.processes import free_port, wait_for


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client closing its keep-alive connection is not news


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP server on `host` (a 127.0.0.x address) that records every request."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200) -> None:
        self.default_status = status
        self.plan: deque[int] = deque()  # status codes for the next calls, then `default_status`
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status = receiver.plan.popleft() if receiver.plan else receiver.default_status
                answer = b'{"ok":true}' if 200 <= status < 300 else b'{"ok":false,"error":"planned failure"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = do_PUT = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_first(self, count: int, status: int = 500) -> None:
        with self._lock:
            self.plan.extend([status] * count)

    def posts(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and (path is None or r.path == path)]

    def wait(self, count: int, timeout: float = 15) -> list[Received]:
        return wait_for(lambda: len(self.posts()) >= count and self.posts(), timeout, what=f"{count} POST(s)")

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None = None


@dataclass
class _Handler:
    mails: list[Mail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.mails.append(
            Mail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message_from_bytes(envelope.content, policy=policy.default),
                login,
            )
        )
        return "250 OK"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message; with `credentials`, AUTH checks them."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.handler = _Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if credentials:
            user, password = credentials

            def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                    user.encode(),
                    password.encode(),
                )
                return AuthResult(success=ok, handled=False, auth_data=auth_data)

            kwargs = {"authenticator": authenticate, "auth_require_tls": False}
        # server_hostname: otherwise aiosmtpd asks DNS for this machine's FQDN.
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="smtp.test", **kwargs
        )

    @property
    def mails(self) -> list[Mail]:
        return self.handler.mails

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
