"""A local web lab: real HTTP servers on 127.0.0.x serving fixed routes, recording every request.

Used by the discovery tests (and the recon lab later). Loopback only.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli

from app.secrets.rules import RuleSet, fake_secret, load_rules


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow or hanging server)


class LabServer:
    """An HTTP server on `host` (a 127.0.0.x address) with a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        lab = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                lab.requests.append(self.path)
                route = lab.routes.get(self.path.split("?", 1)[0]) or Route(b"not found", 404)
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add(self, path: str, body: bytes | str, status: int = 200, delay: float = 0.0, **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Route(data, status, {k.replace("_", "-"): v for k, v in headers.items()}, delay)

    def start(self) -> LabServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@cache
def _rules() -> RuleSet:
    return load_rules()  # ~400 rules: read once per test process


def fake(rule_id: str, rng: random.Random) -> str:
    """A freshly generated fake credential in the format of one of our rules."""
    return fake_secret(_rules().by_id(rule_id), rng)


@dataclass
class Planted:
    path: str  # where it is served
    rule: str
    value: str
    line: int
    source: str | None = None  # original file inside a source map
    source_line: int | None = None


def build_js_site(site: LabServer, offsite: LabServer, rng: random.Random) -> list[Planted]:
    """A small single-page app: page + inline script, webpack runtime with lazy chunks, a Vite-style
    preload, a gzip-encoded script, a source map, plus things that must not be fetched or found."""
    planted: list[Planted] = []
    stripe, slack, github, openai, npm, gitlab = (
        fake(r, rng)
        for r in (
            "stripe-secret-key",
            "slack-webhook-url",
            "github-pat",
            "openai-api-key",
            "npm-access-token",
            "gitlab-pat",
        )
    )
    sendgrid = fake("sendgrid-api-key", rng)

    page = (
        "<!doctype html>\n<html><head><title>Lab app</title>\n"
        '<link rel="modulepreload" href="/assets/vendor-4f3a.js">\n'
        "<script>\n"
        f'window.__CONFIG__={{apiBase:"/api/v2",stripeKey:"{stripe}"}};\n'
        "</script>\n"
        '<script src="/static/js/main.9c1d2e.js" defer></script>\n'
        f'<script src="{offsite.url}/tracker.js"></script>\n'
        '<script src="/go/cdn.js"></script>\n'
        '<script src="/missing.js"></script>\n'
        '<script src="/bomb.js"></script>\n'
        "</head><body><div id=root></div></body></html>\n"
    )
    site.add("/", page, content_type="text/html; charset=utf-8")
    planted.append(Planted("/", "stripe-secret-key", stripe, 5))

    main = (
        '(()=>{"use strict";var e={},r={};r.p="/";\n'
        'r.u=e=>"static/js/"+e+"."+{17:"1a2b3c4d",42:"5e6f7a8b"}[e]+".chunk.js";\n'
        'const t=fetch("/api/v2/users/me"),n="https://api.lab.test/v1/graphql";\n'
        # Hostile markup next to a secret: the UI shows it in the context, escaped, never run.
        f'const banner="<img src=x onerror=alert(document.domain)>",hook="{slack}";\n'
        "const k=process.env.REACT_APP_SECRET,o={apiKey:e.apiKey};\n"
        "})();\n"
        "//# sourceMappingURL=main.9c1d2e.js.map\n"
    )
    site.add("/static/js/main.9c1d2e.js", main, content_type="application/javascript")
    planted.append(Planted("/static/js/main.9c1d2e.js", "slack-webhook-url", slack, 4))

    source = f'export const config = {{\n  name: "lab",\n  token: "{github}",\n}};\n'
    sourcemap = (
        '{"version":3,"file":"main.9c1d2e.js","sources":["webpack://lab/./src/config.ts"],'
        f'"sourcesContent":[{_json_string(source)}],"names":[],"mappings":"AAAA"}}'
    )
    site.add("/static/js/main.9c1d2e.js.map", sourcemap, content_type="application/json")
    planted.append(
        Planted("/static/js/main.9c1d2e.js.map", "github-pat", github, 1, "webpack://lab/./src/config.ts", 3)
    )

    site.add(
        "/static/js/17.1a2b3c4d.chunk.js",
        f'(self.webpackChunk=self.webpackChunk||[]).push([[17],{{9:e=>{{e.exports={{key:"{openai}"}}}}}}]);\n'
        'import("./lazy-settings.js");\n',
        content_type="application/javascript",
    )
    planted.append(Planted("/static/js/17.1a2b3c4d.chunk.js", "openai-api-key", openai, 1))
    site.add("/static/js/42.5e6f7a8b.chunk.js", "console.log('clean chunk');\n", content_type="text/javascript")
    site.add(
        "/static/js/lazy-settings.js",
        f"\n\nexport default {{registry:'https://registry.npmjs.org/',authToken:'{npm}'}};\n",
        content_type="text/javascript",
    )
    planted.append(Planted("/static/js/lazy-settings.js", "npm-access-token", npm, 3))

    vendor = f'const t={{"PRIVATE-TOKEN":"{gitlab}"}};import"./dep-77aa.js";\n'.encode()
    site.add("/assets/vendor-4f3a.js", gzip.compress(vendor), content_type="text/javascript", content_encoding="gzip")
    planted.append(Planted("/assets/vendor-4f3a.js", "gitlab-pat", gitlab, 1))
    site.add(
        "/assets/dep-77aa.js",
        brotli.compress(f'sg.setApiKey("{sendgrid}");\n'.encode()),
        content_type="text/javascript",
        content_encoding="br",
    )
    planted.append(Planted("/assets/dep-77aa.js", "sendgrid-api-key", sendgrid, 1))

    # Off the site: never fetched, directly or through a redirect.
    offsite.add("/tracker.js", f'var leak="{fake("github-pat", rng)}";', content_type="text/javascript")
    offsite.add("/cdn.js", f'var leak="{fake("github-pat", rng)}";', content_type="text/javascript")
    site.add("/go/cdn.js", "", status=302, location=f"{offsite.url}/cdn.js")
    # A gzip bomb: a few KiB on the wire, 64 MiB decoded.
    site.add("/bomb.js", gzip.compress(b"\0" * (64 << 20), 9), content_type="text/javascript", content_encoding="gzip")
    return planted


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)
