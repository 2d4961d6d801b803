"""`{{...}}` in paths, headers and bodies: the target's variables, template variables, payload values and
values extracted by earlier requests; anything else inside the braces is a DSL expression
(`{{to_lower(Host)}}`, `{{base64(username + ":" + password)}}`)."""

from __future__ import annotations

import itertools
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from app.checks import dsl
from app.errors import DslError

MAX_COMBINATIONS = 512  # payload combinations tried per request (clusterbomb grows fast)
MAX_EXPANDED = 64 << 10  # characters of one expanded path, header or body
_MARKER = re.compile(r"\{\{(.{1,2000}?)\}\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][\w\-]*")


def target_variables(url: str) -> dict[str, str]:
    """The variables nuclei documents for an input URL."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or ""
    shown_host = f"[{host}]" if ":" in host else host
    port = parts.port or (443 if scheme == "https" else 80)
    default = (scheme, port) in (("http", 80), ("https", 443))
    hostname = shown_host if default and parts.port is None else f"{shown_host}:{port}"
    root = f"{scheme}://{hostname}"
    path = parts.path.rstrip("/")
    file = path.rsplit("/", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    return {
        "BaseURL": root + path + (f"?{parts.query}" if parts.query else ""),
        "RootURL": root,
        "Hostname": hostname,
        "Host": host,
        "Port": str(port),
        "Path": path,
        "File": file,
        "Scheme": scheme,
        "FQDN": host,
        "randstr": random_string(),
    }


def random_string(length: int = 27) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def expand(text: str, values: Mapping[str, Any]) -> str:
    """Replace every `{{...}}`; an unknown name or a failing expression is left as written (as nuclei
    does), so a request is still sent and its matchers decide."""
    if "{{" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        if _NAME.fullmatch(inner):
            value = values.get(inner)
            if value is None and inner.startswith("randstr"):
                value = values.setdefault(inner, random_string()) if isinstance(values, dict) else random_string()
            return match.group(0) if value is None else _text(value)
        try:
            return _text(dsl.evaluate(inner, values))
        except DslError:
            return match.group(0)

    expanded = _MARKER.sub(one, text)
    return expanded[:MAX_EXPANDED]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def combinations(payloads: tuple[tuple[str, tuple[str, ...]], ...], attack: str) -> Iterator[dict[str, str]]:
    """Payload values per request, as nuclei's attack types are documented: batteringram (each value of
    one list in every position), pitchfork (the lists side by side), clusterbomb (every combination).
    Bounded by MAX_COMBINATIONS."""
    if not payloads:
        yield {}
        return
    names = [name for name, _ in payloads]
    lists = [values for _, values in payloads]
    if attack == "pitchfork":
        rows: Iterator[tuple[str, ...]] = zip(*lists, strict=False)
    elif attack == "clusterbomb":
        rows = itertools.product(*lists)
    else:
        # batteringram: one set of values, the same one in every named position
        rows = ((value,) * len(names) for value in itertools.chain.from_iterable(lists))
    for row in itertools.islice(rows, MAX_COMBINATIONS):
        yield dict(zip(names, row, strict=True))
