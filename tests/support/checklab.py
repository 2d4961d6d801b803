"""A loopback web server that answers as each check's `x-assetmon-lab` examples say.

One server, many sites: the Host header names the site (`<site>.lab`), and every name is pinned to
127.0.0.1 by the runner's pin function, so a few hundred flawed and clean sites cost one port.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NOT_FOUND = (
    404,
    [("Content-Type", "text/html")],
    b"<html><head><title>404 Not Found</title></head><body>Not Found</body></html>",
)
_PLACEHOLDER = re.compile(r"\{\{request\.(header|query)\.([A-Za-z0-9_\-]+)\}\}")


def _answer_of(entry: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    body = base64.b64decode(entry["body_base64"]) if "body_base64" in entry else str(entry.get("body", "")).encode()
    headers = [(str(k), str(v)) for k, v in (entry.get("headers") or {}).items()]
    return int(entry.get("status", 200)), headers, body


def _fill(text: str, headers, query_string: str) -> str:
    """The request's header and query values in a lab answer (servers that reflect what they are sent)."""
    query = parse_qs(query_string)

    def one(m: re.Match[str]) -> str:
        if m.group(1) == "header":
            return headers.get(m.group(2), "")
        return (query.get(m.group(2)) or [""])[0]

    return _PLACEHOLDER.sub(one, text)


class Lab:
    """sites: {site name: [answers]} (the `flawed` or `clean` list of a check's examples)."""

    def __init__(self) -> None:
        self.sites: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str, str]] = []  # (site, method, path) of every request seen

    def add(self, site: str, answers: list[dict]) -> str:
        self.sites[site] = answers
        return site

    def respond(self, site: str, method: str, target: str, headers) -> tuple[int, list[tuple[str, str]], bytes]:
        self.requests.append((site, method, target))
        parts = urlsplit(target)
        for entry in self.sites.get(site, []):
            if entry.get("method") and str(entry["method"]).upper() != method:
                continue
            want = str(entry.get("path", "*")).replace("{{Host}}", f"{site}.lab")
            if want == "*" or want == target or ("?" not in want and want == parts.path):
                status, answer_headers, body = _answer_of(entry)
                filled = [(k, _fill(v, headers, parts.query)) for k, v in answer_headers]
                if b"{{request." in body:
                    body = _fill(body.decode(), headers, parts.query).encode()
                return status, filled, body
        return NOT_FOUND


class _Handler(BaseHTTPRequestHandler):
    lab: Lab
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        site = (self.headers.get("Host") or "").split(":")[0].removesuffix(".lab")
        status, headers, body = self.lab.respond(site, self.command, self.path, self.headers)
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve(lab: Lab) -> Iterator[int]:
    """Serve `lab` on 127.0.0.1; yields the port."""
    handler = type("Handler", (_Handler,), {"lab": lab})
    # Every own check connects at once: the default backlog of 5 drops connections under that load.
    server_class = type("LabHTTPServer", (ThreadingHTTPServer,), {"request_queue_size": 512})
    server = server_class(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def pin_loopback(host: str) -> str | None:
    """The runner's pin function for the lab: every `.lab` name is this machine; anything else is refused."""
    return "127.0.0.1" if host.endswith(".lab") else None
