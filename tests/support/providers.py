"""Loopback stand-ins for the providers' identity endpoints that live verification calls.

One HTTP server on 127.0.0.1 answers for every kind under `/<kind>/...` (point SECRETS_VERIFY_URLS at
`urls()`). Each kind checks that the request is exactly what that provider documents — method, path,
the header or Basic credentials carrying the secret, the other headers it requires, the body; for AWS
the Signature Version 4 is recomputed from the secret the stand-in knows and compared. A request that
is not right gets 400, which verification reports as "unknown", so a wrong request never passes.

How a known credential answers is set per value: `valid`, `revoked`, `limited` (429) or `hang`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.processes import free_port

# kind: (method, path after the kind, how the secret is presented, required headers, refusal answer)
# Presented: ("header", name, prefix) | ("basic-user",) | ("basic-password", user or None) | ("path",)
SPEC = {
    "github": (
        "GET",
        "/user",
        ("header", "authorization", "Bearer "),
        {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"},
        401,
    ),
    "gitlab": ("GET", "/api/v4/user", ("header", "private-token", ""), {}, 401),
    "slack": ("POST", "/api/auth.test", ("header", "authorization", "Bearer "), {}, "ok-false"),
    "stripe": ("GET", "/v1/account", ("basic-user",), {}, 401),
    "openai": ("GET", "/v1/models", ("header", "authorization", "Bearer "), {}, 401),
    "anthropic": ("GET", "/v1/models", ("header", "x-api-key", ""), {"anthropic-version": "2023-06-01"}, 401),
    "sendgrid": ("GET", "/v3/scopes", ("header", "authorization", "Bearer "), {}, 401),
    "twilio": ("GET", "/2010-04-01/Accounts.json", ("basic-password", None), {}, 401),
    "mailgun": ("GET", "/v3/domains", ("basic-password", "api"), {}, 401),
    "npm": ("GET", "/-/whoami", ("header", "authorization", "Bearer "), {}, 401),
    "discord": ("GET", "/api/v10/users/@me", ("header", "authorization", "Bot "), {}, 401),
    "telegram": ("GET", "/bot{secret}/getMe", ("path",), {}, 401),
    "digitalocean": ("GET", "/v2/account", ("header", "authorization", "Bearer "), {}, 401),
    "huggingface": ("GET", "/api/whoami-v2", ("header", "authorization", "Bearer "), {}, 401),
    "datadog": ("GET", "/api/v1/validate", ("header", "dd-api-key", ""), {}, 403),
    "cloudflare": ("GET", "/client/v4/user/tokens/verify", ("header", "authorization", "Bearer "), {}, 401),
    "heroku": (
        "GET",
        "/account",
        ("header", "authorization", "Bearer "),
        {"accept": "application/vnd.heroku+json; version=3"},
        401,
    ),
    "postman": ("GET", "/me", ("header", "x-api-key", ""), {}, 401),
    "figma": ("GET", "/v1/me", ("header", "x-figma-token", ""), {}, 403),
    "linear": ("POST", "/graphql", ("header", "authorization", ""), {"content-type": "application/json"}, 401),
    "aws": ("POST", "/", ("sigv4",), {}, 403),
}
OK_FIELD = {"slack": "ok", "telegram": "ok", "cloudflare": "success"}


class Providers:
    def __init__(self) -> None:
        self.answers: dict[str, str] = {}  # secret -> valid | revoked | limited | hang
        self.partners: dict[str, str] = {}  # AWS key id / Twilio key SID -> its secret
        self.requests: list[tuple[str, str]] = []  # (kind, verdict) of every request
        self.port = free_port()
        providers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind, _, rest = self.path.lstrip("/").partition("/")
                verdict, secret = providers.check(kind, self.command, "/" + rest, self.headers, body, self.path)
                providers.requests.append((kind, verdict))
                if verdict == "bad request":
                    self._answer(400, {"error": "not the request this provider expects"})
                    return
                answer = providers.answers.get(secret, "revoked")
                if answer == "hang":
                    time.sleep(3)
                    answer = "valid"
                if answer == "limited":
                    self._answer(429, {"error": "rate limited"})
                elif answer == "valid":
                    self._answer(200, {OK_FIELD.get(kind, "id"): True})
                elif SPEC[kind][4] == "ok-false":
                    self._answer(200, {"ok": False, "error": "invalid_auth"})
                else:
                    self._answer(SPEC[kind][4], {OK_FIELD.get(kind, "error"): False})

            do_GET = do_POST = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up on a hanging answer

        self.server = Server(("127.0.0.1", self.port), Handler)

    def urls(self) -> dict[str, str]:
        return {kind: f"http://127.0.0.1:{self.port}/{kind}" for kind in SPEC}

    def check(self, kind: str, method: str, path: str, headers, body: bytes, raw_path: str = "") -> tuple[str, str]:
        """("ok", the secret presented) or ("bad request", "")."""
        if kind not in SPEC:
            return "bad request", ""
        want_method, want_path, presented, required, _ = SPEC[kind]
        if method != want_method:
            return "bad request", ""
        if any(headers.get(name, "").lower() != value.lower() for name, value in required.items()):
            return "bad request", ""
        secret = ""
        how = presented[0]
        if how == "path":
            match = re.fullmatch(want_path.replace("{secret}", "(.+)"), path)
            if not match:
                return "bad request", ""
            secret = match.group(1)
        elif path != want_path:
            return "bad request", ""
        elif how == "header":
            value = headers.get(presented[1], "")
            if not value.startswith(presented[2]):
                return "bad request", ""
            secret = value.removeprefix(presented[2])
        elif how in ("basic-user", "basic-password"):
            auth = headers.get("authorization", "")
            if not auth.startswith("Basic "):
                return "bad request", ""
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if how == "basic-user":
                secret = user if password == "" else ""
            elif presented[1] is None:  # the user is the partner (Twilio's key SID)
                secret = password if self.partners.get(user) == password else ""
            else:
                secret = password if user == presented[1] else ""
            if not secret:
                return "bad request", ""
        elif how == "sigv4":
            secret = self._sigv4(headers, body, raw_path or path)
            if not secret:
                return "bad request", ""
        if kind == "linear" and json.loads(body or b"{}").get("query") != "{ viewer { id } }":
            return "bad request", ""
        return "ok", secret

    def _sigv4(self, headers, body: bytes, path: str) -> str:
        """The secret whose Signature Version 4 matches the request (docs.aws.amazon.com, "Signature
        Version 4 signing process"); a wrong signature is AWS's 403, so the secret is not "valid"."""
        if body != b"Action=GetCallerIdentity&Version=2011-06-15":
            return ""
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/sts/aws4_request, "
            r"SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if not match:
            return ""
        key_id, day, region, signed_names, signature = match.groups()
        secret = self.partners.get(key_id, "")
        stamp = headers.get("x-amz-date", "")
        canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_names.split(";"))
        canonical = "\n".join(["POST", path, "", canonical_headers, signed_names, hashlib.sha256(body).hexdigest()])
        scope = f"{day}/{region}/sts/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = ("AWS4" + secret).encode()
        for part in (day, region, "sts", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return secret if secret and hmac.compare_digest(expected, signature) else "wrong signature"

    def start(self) -> Providers:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
