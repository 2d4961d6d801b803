"""Live verification, when asked: does a found credential work? One read-only identity request to the
provider that issued it (app/secrets/verifiers.toml), bounded in time and rate, never followed through
a redirect, never sent to any other host.

    verified   the provider accepted it: someone holding it can use it now
    invalid    the provider refused it: revoked, expired, or never real
    unknown    no answer that says either (rate-limited, down, hanging, no verifier, no partner key)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.secrets.engine import Finding
from app.settings import get_settings

RAISED = {"low": "medium", "medium": "high", "high": "critical", "critical": "critical"}
VERIFIERS_FILE = Path(__file__).with_name("verifiers.toml")
STATUSES = ("verified", "invalid", "unknown")
MAX_ANSWER_BYTES = 64 << 10
PARTNER_DISTANCE = 2048  # bytes between a credential and the one that goes with it


@dataclass(frozen=True)
class Verifier:
    kind: str
    rules: tuple[str, ...]
    url: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    basic: tuple[str, str] | None = None
    body: str | None = None
    json: str | None = None
    partner: str | None = None
    sign: str | None = None
    region: str = "us-east-1"
    service: str = ""
    ok_field: str | None = None
    valid: tuple[int, ...] = (200,)
    invalid: tuple[int, ...] = (401,)


@dataclass(frozen=True)
class Verification:
    status: str
    detail: str
    checked_at: str


@cache
def verifiers() -> dict[str, Verifier]:
    """{rule id: its verifier}."""
    by_rule: dict[str, Verifier] = {}
    for raw in tomllib.loads(VERIFIERS_FILE.read_text())["verifier"]:
        verifier = Verifier(
            **{k: v for k, v in raw.items() if k not in ("rules", "basic", "valid", "invalid")},
            rules=tuple(raw["rules"]),
            basic=tuple(raw["basic"]) if "basic" in raw else None,
            valid=tuple(raw.get("valid", (200,))),
            invalid=tuple(raw.get("invalid", (401,))),
        )
        by_rule |= {rule: verifier for rule in verifier.rules}
    return by_rule


def raised(severity: str, status: str) -> str:
    """A credential that works is worse than one that might."""
    return RAISED.get(severity, severity) if status == "verified" else severity


def needs_partner(rule: str) -> str | None:
    verifier = verifiers().get(rule)
    return verifier.partner if verifier else None


class _RateLimit:
    """At most `per_minute` verification requests from this process, spread evenly."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = 0.0

    def wait(self, per_minute: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + 60.0 / per_minute
        time.sleep(max(0.0, start - now))


_LIMIT = _RateLimit()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def base_url(verifier: Verifier) -> str:
    return get_settings().secrets_verify_urls.get(verifier.kind, verifier.url).rstrip("/")


def _fill(text: str, secret: str, partner: str) -> str:
    return text.replace("{secret}", secret).replace("{partner}", partner)


def _sigv4(verifier: Verifier, url: str, body: bytes, key_id: str, secret: str) -> dict[str, str]:
    """AWS Signature Version 4 headers for a form POST (docs.aws.amazon.com, "Create a signed AWS API request")."""
    host = urlsplit(url).netloc
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    content_type = "application/x-www-form-urlencoded; charset=utf-8"
    payload_hash = hashlib.sha256(body).hexdigest()
    signed = "content-type;host;x-amz-date"
    canonical = "\n".join(
        [
            verifier.method,
            urlsplit(url).path or "/",
            "",
            f"content-type:{content_type}\nhost:{host}\nx-amz-date:{stamp}\n",
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{verifier.region}/{verifier.service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, verifier.region, verifier.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Amz-Date": stamp,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={signature}",
    }


def verify(rule: str, secret: str, partner: str | None = None) -> Verification:
    """Ask the provider. Never raises for what the network or the provider does."""
    verifier = verifiers().get(rule)
    if verifier is None:
        return Verification("unknown", f"no verifier for {rule}", _now())
    if verifier.partner and not partner:
        return Verification("unknown", f"needs the matching {verifier.partner} nearby, and none was found", _now())
    settings = get_settings()
    partner = partner or ""
    url = base_url(verifier) + _fill(verifier.path, secret, partner)
    headers = {name: _fill(value, secret, partner) for name, value in verifier.headers.items()}
    content = (verifier.body or verifier.json or "").encode() or None
    if verifier.sign == "aws-sigv4":
        headers |= _sigv4(verifier, url, content or b"", partner, secret)
    auth = tuple(_fill(part, secret, partner) for part in verifier.basic) if verifier.basic else None
    if verifier.body and "Content-Type" not in headers:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    _LIMIT.wait(settings.secrets_verify_per_minute)
    try:
        # A fresh client: no cookies or connections shared between providers; no redirects, so a secret
        # never follows an answer to another host.
        with (
            httpx.Client(
                timeout=settings.secrets_verify_timeout_seconds, follow_redirects=False, trust_env=False
            ) as client,
            client.stream(verifier.method, url, headers=headers, content=content, auth=auth) as response,
        ):
            answer = b""
            deadline = time.monotonic() + 2 * settings.secrets_verify_timeout_seconds
            for chunk in response.iter_bytes():
                answer += chunk
                if len(answer) > MAX_ANSWER_BYTES or time.monotonic() > deadline:
                    break  # enough to judge by; a trickling answer does not hold us
    except httpx.TimeoutException:
        return Verification(
            "unknown", f"{verifier.kind} did not answer within {settings.secrets_verify_timeout_seconds:g} s", _now()
        )
    except httpx.HTTPError as exc:
        return Verification("unknown", f"{verifier.kind} could not be reached: {type(exc).__name__}", _now())
    return _judge(verifier, response.status_code, answer)


def _judge(verifier: Verifier, status: int, answer: bytes) -> Verification:
    when = _now()
    if status in verifier.valid:
        if verifier.ok_field is None:
            return Verification("verified", f"{verifier.kind} accepted it (HTTP {status})", when)
        try:
            body: Any = json.loads(answer)
        except ValueError:
            return Verification("unknown", f"{verifier.kind} answered HTTP {status} without JSON", when)
        if isinstance(body, dict) and body.get(verifier.ok_field) is True:
            return Verification("verified", f"{verifier.kind} accepted it (HTTP {status})", when)
        return Verification("invalid", f"{verifier.kind} refused it ({verifier.ok_field} is not true)", when)
    if status in verifier.invalid:
        return Verification("invalid", f"{verifier.kind} refused it (HTTP {status})", when)
    if status == 429:
        return Verification("unknown", f"{verifier.kind} is rate-limiting (HTTP 429): try again later", when)
    return Verification("unknown", f"{verifier.kind} answered HTTP {status}", when)


def verify_report(findings: list[Finding]) -> None:
    """Verify every finding a verifier knows (its partner: the nearest finding of the partner rule in
    the same file), one at a time; each gets its answer and, when verified, a raised severity."""
    for finding in findings:
        verifier = verifiers().get(finding.rule)
        if verifier is None:
            continue
        partner = None
        if verifier.partner:
            near = [
                other
                for other in findings
                if other.rule == verifier.partner
                and other.file == finding.file
                and abs(other.start - finding.start) < PARTNER_DISTANCE
            ]
            partner = min(near, key=lambda other: abs(other.start - finding.start)).secret if near else None
        result = verify(finding.rule, finding.secret, partner)
        finding.verification = {"status": result.status, "detail": result.detail, "checked_at": result.checked_at}
        finding.severity = raised(finding.severity, result.status)
