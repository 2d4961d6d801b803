"""Text checks and formatting shared by the validators and the messages."""

from __future__ import annotations

import unicodedata


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate: JSON can carry one ("\\ud800"), but it is not Unicode, so it
    can be neither stored nor sent anywhere."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def human_size(n: float) -> str:
    """A byte count as people read it: "512 bytes", "1.5 MiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def printable_line(text: str, limit: int) -> str:
    """Text from a target made safe to show on one line: control and format characters (escape
    sequences, bidi overrides, zero-width) out, whitespace collapsed, length capped."""
    kept = (" " if unicodedata.category(c) == "Cc" else "" if unicodedata.category(c) == "Cf" else c for c in text)
    return " ".join("".join(kept).split())[:limit].rstrip()
