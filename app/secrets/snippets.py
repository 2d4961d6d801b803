"""Context around a finding, for people: a raw snippet, or a jsbeautifier-rendered window.

Only a window of a few hundred bytes is ever beautified — never the whole file — and the secret
is swapped for a marker before beautifying, so the context never carries the full value unless
it is explicitly revealed.
"""

from __future__ import annotations

import re

import jsbeautifier

from app.secrets.engine import MASKED_RADIUS, Finding

_MARK = "ASSETMONSECRETMARK"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _text(finding: Finding, lo: int, hi: int, reveal: bool) -> str:
    """Window bytes [lo, hi) as text, with every other secret in it redacted (or shown, on reveal)."""
    parts: list[str] = []
    pos = lo
    for m_lo, m_hi, redacted in sorted(finding.masks):
        if m_hi <= pos or m_lo >= hi:
            continue
        parts.append(finding.window[pos : max(pos, m_lo)].decode("utf-8", "replace"))
        shown = finding.window[max(m_lo, pos) : min(m_hi, hi)].decode("utf-8", "replace") if reveal else redacted
        parts.append(shown)
        pos = min(m_hi, hi)
    parts.append(finding.window[pos:hi].decode("utf-8", "replace"))
    return "".join(parts)


def _around(finding: Finding, radius: int, reveal: bool) -> tuple[str, str]:
    radius = min(radius, MASKED_RADIUS)  # never further than the engine looked for other secrets
    s = finding.start - finding.window_start
    e = finding.end - finding.window_start
    return _text(finding, max(0, s - radius), s, reveal), _text(finding, e, e + radius, reveal)


def snippet(finding: Finding, reveal: bool = False, radius: int = 80) -> str:
    """One line of raw text around the secret (for JSON and storage)."""
    before, after = _around(finding, radius, reveal)
    value = finding.secret if reveal else finding.redacted()
    text = before + value + after
    return _CONTROL.sub("", text.replace("\r", "").replace("\n", "⏎"))


def readable(finding: Finding, reveal: bool = False, radius: int = 240, lines: int = 4) -> tuple[str, str]:
    """A beautified window: (text with the marker replaced, the value shown), for text output and the UI."""
    before, after = _around(finding, radius, reveal)
    pretty = beautify(_CONTROL.sub("", before + _MARK + after))
    rows = pretty.splitlines() or [pretty]
    at = next((i for i, row in enumerate(rows) if _MARK in row), len(rows) // 2)
    shown = finding.secret if reveal else finding.redacted()
    window = "\n".join(rows[max(0, at - lines) : at + lines + 1])
    return window.replace(_MARK, shown), shown


def beautify(text: str) -> str:
    """JavaScript laid out for reading (2-space indent, 120 columns). A window cut mid-token can confuse
    the beautifier: then the text comes back as it was."""
    options = jsbeautifier.default_options()
    options.indent_size = 2
    options.wrap_line_length = 120
    try:
        return jsbeautifier.beautify(text, options)
    except Exception:
        return text
