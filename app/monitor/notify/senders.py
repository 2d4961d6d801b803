"""Sending one notification over one channel: HTTP for webhook, Slack, Discord and Telegram, SMTP for e-mail.

Webhook signature scheme (when the channel has a secret):

    X-AssetMon-Timestamp: <unix seconds of this attempt>
    X-AssetMon-Event:     <event type, e.g. port.opened; "test" for a test message>
    X-AssetMon-Delivery:  <delivery id; the same for every retry of one notification>
    X-AssetMon-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<event type>." + raw body)>

A receiver recomputes the HMAC over the exact bytes it received, compares it in constant time, and
rejects timestamps more than a few minutes old (replays). `verify()` below is the reference.
Nothing here raises: every failure is an Outcome with an error a user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.models import Channel
from app.monitor.notify.channels import REDACTED, redact_url, smtp_options
from app.monitor.notify.messages import human_line, one_line

SIGNATURE_HEADER = "X-AssetMon-Signature"
TIMESTAMP_HEADER = "X-AssetMon-Timestamp"
EVENT_HEADER = "X-AssetMon-Event"
DELIVERY_HEADER = "X-AssetMon-Delivery"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_ERROR = 2000
_SNIPPET = 300


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # what the server asked for (HTTP 429/503 Retry-After)
    seconds: float = 0.0


def sign(secret: str, timestamp: str, event_type: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{event_type}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver does: check the signature over the raw body and refuse stale timestamps."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    event_type = lowered.get(EVENT_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, timestamp, event_type, body), given)


# --- request bodies -----------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def http_request(channel: Channel, document: dict[str, Any], delivery_id: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt (signed afresh each time: the timestamp changes)."""
    line = human_line(document)
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: str(document["type"]),
        DELIVERY_HEADER: str(delivery_id),
    }
    if channel.kind == "webhook":
        payload: dict[str, Any] = {"event": document}
    elif channel.kind == "slack":
        payload = {"text": _slack_escape(line)[:3000]}
    elif channel.kind == "discord":
        # No @everyone or role pings from whatever text a scanned site put in an event.
        payload = {"content": line[:2000], "allowed_mentions": {"parse": []}}
    elif channel.kind == "telegram":
        payload = {"text": line[:4096], "disable_web_page_preview": True}
        chat = parse_qs(urlsplit(channel.url).query).get("chat_id")
        if chat:
            payload["chat_id"] = chat[0]
    else:
        raise ValueError(f"{channel.kind} channels are not sent over HTTP")
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if channel.kind == "webhook" and channel.secret:
        timestamp = str(int(time.time()))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(channel.secret, timestamp, str(document["type"]), body)
    return body, headers


def email_message(channel: Channel, document: dict[str, Any]) -> EmailMessage:
    options = smtp_options(channel.url)
    line = human_line(document)
    msg = EmailMessage()
    msg["Subject"] = one_line(f"AssetMon: {line}", 200)
    msg["From"] = options["sender"]
    msg["To"] = ", ".join(options["recipients"])
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid("assetmon", domain=options["sender"].rsplit("@", 1)[1])
    details = {k: document[k] for k in ("type", "severity", "target_id", "scan_id", "created_at", "id")}
    lines = [line, "", *(f"{k}: {v}" for k, v in details.items() if v is not None)]
    if document.get("data"):
        lines += ["", json.dumps(document["data"], indent=2, ensure_ascii=False, default=str)]
    msg.set_content("\n".join(lines) + "\n")
    return msg


# --- transports ---------------------------------------------------------------------------------------------


def scrub(text: str, channel: Channel) -> str:
    """An error message without the channel's secret, password or token."""
    text = text.replace(channel.url, redact_url(channel.kind, channel.url))
    secrets = [channel.secret]
    if channel.kind == "email":
        with contextlib.suppress(ValueError):
            secrets.append(smtp_options(channel.url)["password"])
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return one_line(text, MAX_ERROR)


async def send(
    channel: Channel, document: dict[str, Any], delivery_id: int, client: httpx.AsyncClient, timeout: float
) -> Outcome:
    """One attempt, bounded by `timeout` (plus a little for e-mail); never raises."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout + 1):
            if channel.kind == "email":
                outcome = await asyncio.to_thread(_send_email, channel, document, timeout)
            else:
                outcome = await _send_http(channel, document, delivery_id, client)
    except TimeoutError:
        outcome = Outcome(False, error=f"no answer within {timeout:g}s (timed out)")
    except httpx.TimeoutException:
        outcome = Outcome(False, error=f"no answer within {timeout:g}s (timed out)")
    except httpx.ConnectError as exc:
        outcome = Outcome(False, error=f"cannot connect: {exc or 'connection failed'}")
    except httpx.HTTPError as exc:
        outcome = Outcome(False, error=f"HTTP error: {type(exc).__name__}: {exc}")
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        outcome = Outcome(False, status_code=exc.smtp_code, error=f"SMTP {exc.smtp_code}: {reply}")
    except smtplib.SMTPRecipientsRefused as exc:
        outcome = Outcome(False, error=f"SMTP: every recipient was refused ({', '.join(exc.recipients)})")
    except (smtplib.SMTPException, OSError) as exc:
        outcome = Outcome(False, error=f"SMTP: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug must not stop the other deliveries; the attempt log shows it
        outcome = Outcome(False, error=f"unexpected error: {type(exc).__name__}: {exc}")
    outcome.seconds = round(time.monotonic() - start, 3)
    if outcome.error:
        outcome.error = scrub(outcome.error, channel)
    return outcome


async def _send_http(
    channel: Channel, document: dict[str, Any], delivery_id: int, client: httpx.AsyncClient
) -> Outcome:
    body, headers = http_request(channel, document, delivery_id)
    async with client.stream("POST", channel.url, content=body, headers=headers) as response:
        status = response.status_code
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            return Outcome(False, status, f"HTTP {status}: redirected to {where}; set the channel URL to the target")
        # A short answer read to the end keeps the connection reusable; an error's start explains it.
        # The receiver has accepted a 2xx already, so trouble reading its answer does not fail the attempt.
        snippet = b""
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(1.0):
                async for chunk in response.aiter_bytes():
                    snippet += chunk
                    if len(snippet) >= _SNIPPET:
                        break
        if 200 <= status < 300:
            return Outcome(True, status_code=status)
        text = one_line(snippet[:_SNIPPET].decode(errors="replace"), _SNIPPET)
        return Outcome(False, status, f"HTTP {status}" + (f": {text}" if text else ""), _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _send_email(channel: Channel, document: dict[str, Any], timeout: float) -> Outcome:
    options = smtp_options(channel.url)
    message = email_message(channel, document)
    context = ssl.create_default_context()
    # An explicit EHLO name: smtplib's default asks DNS for our FQDN.
    local = socket.gethostname() or "assetmon"
    if options["tls"]:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            options["host"], options["port"], local_hostname=local, timeout=timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(options["host"], options["port"], local_hostname=local, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if options["starttls"]:
            smtp.starttls(context=context)
            smtp.ehlo()
        if options["user"]:
            smtp.login(options["user"], options["password"] or "")
        refused = smtp.send_message(message, from_addr=options["sender"], to_addrs=options["recipients"])
    if refused:
        return Outcome(True, 250, f"accepted, but refused for {', '.join(sorted(refused))}")
    return Outcome(True, 250)
