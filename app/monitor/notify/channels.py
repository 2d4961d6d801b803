"""Notification channels: where events go (webhook, Slack, Discord, Telegram, e-mail) and which ones.

Every write validates the whole channel first; listings never show a secret, a URL's password or
the token part of a chat webhook URL (whoever holds those can post to the channel).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from sqlmodel import col, select

from app.db import session_scope
from app.errors import ChannelError, ChannelNotFound
from app.models import Channel, iso
from app.net.text import has_lone_surrogate

KINDS = ("webhook", "slack", "discord", "telegram", "email")
SEVERITIES = ("info", "low", "medium", "high", "critical")
EVENT_TYPES = (
    "scan.baseline",
    "subdomain.new",
    "subdomain.gone",
    "dns.changed",
    "port.opened",
    "port.closed",
    "service.new",
    "service.changed",
    "cert.changed",
    "cert.expiring",
    "js.new",
    "secret.new",
    "takeover.candidate",
    "test",
)
FIELDS = ("kind", "url", "events", "min_severity", "secret", "enabled")
REDACTED = "***"

_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
_SMTP_OPTIONS = {"from", "to", "starttls"}
_SENSITIVE_QUERY = re.compile(r"(token|secret|key|sig|pass|auth|code)", re.IGNORECASE)


def severity_rank(severity: str) -> int:
    """0 for info ... 4 for critical; an unknown severity counts as info."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- validation ---------------------------------------------------------------------------------------------


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a channel body; raises ChannelError with a message a user can act on."""
    if not isinstance(body, dict):
        raise ChannelError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise ChannelError(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise ChannelError(f"kind: must be one of {', '.join(KINDS)} (got {kind!r})")
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ChannelError(f"url: required; {_URL_HINTS[kind]}")
    url = url.strip()
    if len(url) > 2048 or any(ord(c) < 33 for c in url) or has_lone_surrogate(url):
        raise ChannelError("url: must be at most 2048 characters without spaces, control characters or lone surrogates")
    _URL_CHECKS[kind](url)
    secret = body.get("secret")
    if secret is not None:
        if kind != "webhook":
            raise ChannelError(f"secret: only webhook channels are signed; {kind} channels take no secret")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 500 or has_lone_surrogate(secret):
            raise ChannelError("secret: must be a string of 8 to 500 characters (the HMAC-SHA256 key)")
    severity = body.get("min_severity", "info")
    if severity not in SEVERITIES:
        raise ChannelError(f"min_severity: must be one of {', '.join(SEVERITIES)} (got {severity!r})")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ChannelError("enabled: must be true or false")
    return {
        "kind": kind,
        "url": url,
        "events": _events(body.get("events", [])),
        "min_severity": severity,
        "secret": secret or None,
        "enabled": enabled,
    }


def _events(value: Any) -> list[str]:
    """[] means every type; "*" anywhere means the same."""
    if value is None or value == "*":
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ChannelError('events: must be a list of event types, e.g. ["port.opened", "secret.new"]; [] = all')
    if "*" in value:
        return []
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise ChannelError(f"events: unknown type(s) {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(value))


def _parts(url: str, kind: str, schemes: tuple[str, ...]):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ChannelError(f"url: not a valid URL ({exc}); {_URL_HINTS[kind]}") from None
    if parts.scheme not in schemes:
        raise ChannelError(f"url: {_URL_HINTS[kind]}")
    if not parts.hostname:
        raise ChannelError(f"url: has no host; {_URL_HINTS[kind]}")
    return parts


def _chat_url(url: str, kind: str, hosts: tuple[str, ...], path: re.Pattern[str]):
    """https on the service's own host with its path shape, or http(s) on a loopback address (local tests)."""
    parts = _parts(url, kind, ("http", "https"))
    local = is_loopback(parts.hostname)
    if parts.scheme == "http" and not local:
        raise ChannelError(f"url: {_URL_HINTS[kind]}")
    if parts.username or parts.password:
        raise ChannelError(f"url: must not contain a user or password; {_URL_HINTS[kind]}")
    if not local and (parts.hostname not in hosts or not path.match(parts.path)):
        raise ChannelError(f"url: {_URL_HINTS[kind]}")
    return parts


def _check_webhook(url: str) -> None:
    _parts(url, "webhook", ("http", "https"))


def _check_slack(url: str) -> None:
    _chat_url(url, "slack", ("hooks.slack.com",), re.compile(r"^/services/[^/]+/[^/]+/[^/]+/?$"))


def _check_discord(url: str) -> None:
    hosts = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
    _chat_url(url, "discord", hosts, re.compile(r"^/api/(v\d+/)?webhooks/\d+/[^/]+/?$"))


_TELEGRAM_PATH = re.compile(r"^(?P<prefix>.*)/bot(?P<token>[^/]+)/sendMessage$")


def _check_telegram(url: str) -> None:
    parts = _chat_url(url, "telegram", ("api.telegram.org",), _TELEGRAM_PATH)
    if not _TELEGRAM_PATH.match(parts.path):
        raise ChannelError(f"url: {_URL_HINTS['telegram']}")
    chat = parse_qs(parts.query).get("chat_id", [""])[0]
    if not re.fullmatch(r"-?\d+|@\w{5,}", chat):
        raise ChannelError("url: needs ?chat_id=<numeric chat id or @channelname>; " + _URL_HINTS["telegram"])


def smtp_options(url: str) -> dict[str, Any]:
    """The parts of an smtp:// or smtps:// URL: host, port, user, password, tls, starttls, sender, recipients."""
    parts = _parts(url, "email", ("smtp", "smtps"))
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _SMTP_OPTIONS)
    if unknown:
        raise ChannelError(f"url: unknown option(s) {', '.join(unknown)}; email URLs take from, to, starttls")
    sender = query.get("from", [""])[0].strip()
    if not _EMAIL.match(sender):
        raise ChannelError(f"url: needs from=<address> (got {sender!r}); {_URL_HINTS['email']}")
    recipients = [a.strip() for v in query.get("to", []) for a in v.split(",") if a.strip()]
    if not recipients or not all(_EMAIL.match(a) for a in recipients):
        raise ChannelError(f"url: needs to=<address>[,<address>...] (got {recipients!r}); {_URL_HINTS['email']}")
    starttls = query.get("starttls", ["0"])[0]
    if starttls not in ("0", "1"):
        raise ChannelError("url: starttls must be 0 or 1")
    tls = parts.scheme == "smtps"
    if parts.password and not (tls or starttls == "1" or is_loopback(parts.hostname)):
        raise ChannelError("url: a password is only sent over TLS: use smtps:// or add starttls=1")
    return {
        "host": parts.hostname,
        "port": parts.port or (465 if tls else 25),
        "user": _unquote(parts.username),
        "password": _unquote(parts.password),
        "tls": tls,
        "starttls": starttls == "1",
        "sender": sender,
        "recipients": recipients,
    }


def _unquote(value: str | None) -> str | None:
    return unquote(value) if value else None


_URL_HINTS = {
    "webhook": "webhook channels need an http:// or https:// URL that accepts a JSON POST",
    "slack": "slack channels need an https://hooks.slack.com/services/... URL (an incoming webhook)",
    "discord": "discord channels need an https://discord.com/api/webhooks/<id>/<token> URL",
    "telegram": "telegram channels need https://api.telegram.org/bot<TOKEN>/sendMessage?chat_id=<chat id>",
    "email": "email channels need smtp://[user:pass@]host[:port]?from=a@x&to=b@y[,c@z][&starttls=1] (or smtps://)",
}
_URL_CHECKS = {
    "webhook": _check_webhook,
    "slack": _check_slack,
    "discord": _check_discord,
    "telegram": _check_telegram,
    "email": smtp_options,
}


# --- redaction and output -----------------------------------------------------------------------------------


def redact_url(kind: str, url: str) -> str:
    """The URL without what lets someone else post: passwords, webhook tokens, sensitive query values."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    if parts.username:
        netloc = f"{parts.username}{':' + REDACTED if parts.password else ''}@{netloc}"
    elif parts.password:
        netloc = f":{REDACTED}@{netloc}"
    path = parts.path
    if kind in ("slack", "discord"):
        segments = path.rstrip("/").split("/")
        if len(segments) > 2:
            segments[-1] = REDACTED
            path = "/".join(segments)
    elif kind == "telegram":
        path = re.sub(r"/bot[^/]+/", f"/bot{REDACTED}/", path)
    query = parts.query
    if query and kind != "email":
        pairs = parse_qs(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SENSITIVE_QUERY.search(k) else v) for k, vs in pairs.items() for v in vs], safe="*@,"
        )
    return parts._replace(netloc=netloc, path=path, query=query).geturl()


def to_dict(channel: Channel) -> dict[str, Any]:
    """The public form of a channel: no secret, no password, no token."""
    return {
        "id": channel.id,
        "kind": channel.kind,
        "url": redact_url(channel.kind, channel.url),
        "events": list(channel.events),
        "min_severity": channel.min_severity,
        "signed": bool(channel.secret),
        "enabled": channel.enabled,
        "created_at": iso(channel.created_at),
    }


def matches(channel: Channel, event_type: str, severity: str) -> bool:
    """Whether an event passes the channel's type filter and minimum severity."""
    if channel.events and event_type not in channel.events:
        return False
    return severity_rank(severity) >= severity_rank(channel.min_severity)


# --- persistence --------------------------------------------------------------------------------------------


def create(body: dict[str, Any]) -> Channel:
    values = validate(body)
    with session_scope() as session:
        channel = Channel(**values)
        session.add(channel)
        session.flush()
        session.refresh(channel)
        return channel


def list_channels(limit: int = 500) -> list[Channel]:
    with session_scope() as session:
        return list(session.exec(select(Channel).order_by(col(Channel.id)).limit(limit)).all())


def get(channel_id: int) -> Channel:
    with session_scope() as session:
        channel = session.get(Channel, channel_id)
    if channel is None:
        raise ChannelNotFound(channel_id)
    return channel


def delete(channel_id: int) -> None:
    """The channel and (by cascade) its deliveries and their attempt log."""
    with session_scope() as session:
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise ChannelNotFound(channel_id)
        session.delete(channel)
