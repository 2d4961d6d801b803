"""What a notification says: the event as a JSON document (webhooks) or one human line (chat, e-mail).

Only what is in the event goes out, and defensively less: values under keys named like secrets
(secret, token, password, value, ...) are masked and everything is capped in size, so a change in
what events carry can never turn a notification into a leak.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.models import Event, iso, utcnow
from app.monitor.events import event_dict

TEST_TYPE = "test"
TEST_SUMMARY = "AssetMon test notification"

_SENSITIVE_KEY = re.compile(r"secret|token|passw|api_?key|private_?key|credential|cookie|^value$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
MAX_STRING = 1000
MAX_ITEMS = 100
MAX_DEPTH = 6


def mask(value: str) -> str:
    """Redacted the way the secrets engine does (at most four characters, then "…"); already redacted stays."""
    if value.endswith("…") and len(value) <= 5:
        return value
    shown = 4 if len(value) >= 16 else len(value) // 4
    return value[:shown] + "…"


def sanitize(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, size-capped copy with sensitive-looking fields masked."""
    if depth > MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more"
                break
            key = str(key)[:100]
            if _SENSITIVE_KEY.search(key) and isinstance(item, str | bytes):
                out[key] = mask(item if isinstance(item, str) else item.decode(errors="replace"))
            else:
                out[key] = sanitize(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set):
        items = [sanitize(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return iso(value)
    return sanitize(str(value), depth + 1)


def one_line(text: str, limit: int = 500) -> str:
    text = _CONTROL.sub(" ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_document(event: Event | None) -> dict[str, Any]:
    """The event as webhooks receive it; None is the test message."""
    if event is None:
        return {
            "id": None,
            "target_id": None,
            "scan_id": None,
            "type": TEST_TYPE,
            "severity": "info",
            "summary": TEST_SUMMARY,
            "data": {},
            "created_at": iso(utcnow()),
        }
    return event_dict(event) | {"summary": one_line(event.summary), "data": sanitize(event.data or {})}


def human_line(document: dict[str, Any]) -> str:
    """'[HIGH] port.opened — 10.0.0.5:8080 opened on acme (scan 1a2b3c4d)'"""
    line = f"[{str(document['severity']).upper()}] {document['type']} — {one_line(document['summary'])}"
    if document.get("scan_id"):
        line += f" (scan {str(document['scan_id'])[:8]})"
    return line
