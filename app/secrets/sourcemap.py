"""Source maps: say which original source file and line a finding in `sourcesContent` comes from.

The map is scanned as raw bytes like any file (so offsets are exact in the .map file); this
module then finds which `sourcesContent` string holds each finding, without building the JSON
tree (deeply nested or huge maps cannot exhaust the stack or memory).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right

from app.secrets.engine import Finding

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"|null', re.DOTALL)
_SPACE = re.compile(rb"[\s,]*")


def _array_after(data: bytes, key: bytes) -> list[tuple[int, int]]:
    """Spans (start, end) of the JSON string (or null) elements of the array under `key`."""
    at = data.find(b'"' + key + b'"')
    if at < 0:
        return []
    bracket = data.find(b"[", at)
    if bracket < 0:
        return []
    spans: list[tuple[int, int]] = []
    pos = bracket + 1
    while pos < len(data):
        pos = _SPACE.match(data, pos).end()
        if pos >= len(data) or data[pos : pos + 1] == b"]":
            break
        match = _STRING.match(data, pos)
        if match is None:
            break  # not a list of strings: give up quietly
        spans.append(match.span())
        pos = match.end()
    return spans


def _decode(raw: bytes) -> str:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def annotate(findings: list[Finding], data: bytes) -> None:
    """Fill `source`, `source_line` and `source_column` for findings inside sourcesContent."""
    contents = _array_after(data, b"sourcesContent")
    if not contents:
        return
    sources = [_decode(data[s:e]) if data[s:e] != b"null" else None for s, e in _array_after(data, b"sources")]
    starts = [s for s, _ in contents]
    for finding in findings:
        i = bisect_right(starts, finding.start) - 1
        if i < 0:
            continue
        s, e = contents[i]
        if not (s < finding.start and finding.end <= e):
            continue
        prefix = _decode(data[s : finding.start] + b'"')  # the original text before the secret
        finding.source = sources[i] if i < len(sources) else f"sourcesContent[{i}]"
        finding.source_line = prefix.count("\n") + 1
        finding.source_column = len(prefix) - (prefix.rfind("\n") + 1) + 1
