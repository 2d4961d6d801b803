"""What a web answer says: its title, its certificate, its favicon hash, the technologies behind it.

Pure functions over bytes a target sent (hostile by assumption): every pattern is bounded (TAG_MAX,
HTML_HEAD_BYTES), every string kept is cleaned and capped. The technology fingerprints are data
(data/technologies.toml), each with examples the tests check.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import html
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import mmh3
from cryptography import x509
from cryptography.x509.oid import NameOID

from app.net.text import printable_line

TECHNOLOGIES_FILE = Path(__file__).resolve().parent.parent / "data" / "technologies.toml"

MAX_TITLE_CHARS = 300
MAX_HEADER_CHARS = 200
MAX_SANS = 1000
HTML_HEAD_BYTES = 512 << 10  # <title>, <link rel=icon> and <meta name=generator> are looked for here
TAG_MAX = 2048  # longest tag we parse: keeps the patterns linear on hostile markup


@dataclass
class TlsInfo:
    subject_cn: str | None
    sans: list[str]
    issuer: str
    not_before: str  # ISO 8601, UTC
    not_after: str
    expired: bool
    self_signed: bool
    fingerprint_sha256: str  # lowercase hex of the DER certificate's SHA-256


_TITLE_OPEN = re.compile(rb"<title\b[^>]{0,%d}>" % TAG_MAX, re.IGNORECASE)
_TITLE_CLOSE = re.compile(rb"</title\s*>", re.IGNORECASE)
_TAG = {name: re.compile(rb"<%s\b([^>]{0,%d})>" % (name, TAG_MAX), re.IGNORECASE) for name in (b"link", b"meta")}
_ATTRIBUTE = re.compile(rb"""([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([a-zA-Z0-9_.:-]{1,40})""", re.IGNORECASE)


def _charset(body: bytes, content_type: str) -> str:
    for source in (content_type.encode("latin-1", "replace"), body[:2048]):
        match = _CHARSET.search(source)
        if match:
            try:
                return codecs.lookup(match.group(1).decode("ascii")).name
            except LookupError:
                pass
    return "utf-8"


def page_title(body: bytes, content_type: str = "") -> str | None:
    """The first <title>, entity-decoded, whitespace-collapsed, without control characters, capped."""
    head = body[:HTML_HEAD_BYTES]
    opened = _TITLE_OPEN.search(head)
    if not opened:
        return None
    window = head[opened.end() : opened.end() + MAX_TITLE_CHARS * 16]
    closed = _TITLE_CLOSE.search(window)
    raw = window[: closed.start()] if closed else window
    text = raw.decode(_charset(body, content_type), "replace")
    return printable_line(html.unescape(text), MAX_TITLE_CHARS) or None


def _tags(body: bytes, name: bytes) -> Iterable[dict[str, str]]:
    """Attributes (lowercase names, entity-decoded values) of each <link> or <meta> in the head."""
    for tag in _TAG[name].finditer(body[:HTML_HEAD_BYTES]):
        attributes = {}
        for m in _ATTRIBUTE.finditer(tag.group(1)):
            value = next(v for v in m.groups()[1:] if v is not None)
            attributes[m.group(1).decode("latin-1").lower()] = html.unescape(value.decode("utf-8", "replace"))
        yield attributes


def icon_href(body: bytes) -> str | None:
    for attributes in _tags(body, b"link"):
        rel = attributes.get("rel", "").lower().split()
        if "icon" in rel and attributes.get("href", "").strip():
            return attributes["href"].strip()
    return None


def generators(body: bytes) -> list[str]:
    return [a.get("content", "") for a in _tags(body, b"meta") if a.get("name", "").lower() == "generator"]


def favicon_hash(data: bytes) -> int:
    """Shodan's http.favicon.hash: signed 32-bit MurmurHash3 of the base64 with a newline every 76 chars."""
    return mmh3.hash(base64.encodebytes(data))


def tls_info(der: bytes, now: datetime | None = None) -> TlsInfo:
    """The certificate fields we keep; ValueError when it cannot be parsed."""
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject_cn = printable_line(str(names[0].value), MAX_HEADER_CHARS) if names else None
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in alt.get_values_for_type(x509.DNSName)]
        sans += [str(v) for v in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    not_after = cert.not_valid_after_utc
    self_signed = cert.issuer == cert.subject
    if self_signed:
        try:
            cert.verify_directly_issued_by(cert)
        except Exception:  # signed by another key under the same name, or an algorithm we cannot check
            self_signed = False
    return TlsInfo(
        subject_cn=subject_cn,
        sans=[printable_line(s, 300) for s in sans[:MAX_SANS]],
        issuer=printable_line(cert.issuer.rfc4514_string(), MAX_HEADER_CHARS * 2),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=not_after.isoformat(),
        expired=(now or datetime.now(UTC)) > not_after,
        self_signed=self_signed,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
    )


# --- technologies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Technology:
    """A fingerprint from technologies.toml: any one of its signals names the technology."""

    name: str
    headers: dict[str, re.Pattern[str]]  # lowercase header name -> pattern on each value ("" = present)
    cookies: frozenset[str]  # lowercase Set-Cookie names
    generator: re.Pattern[str] | None  # on <meta name="generator" content>
    body: tuple[re.Pattern[bytes], ...]
    examples: tuple[dict[str, Any], ...]  # true positives, checked by the tests


_TECHNOLOGY_KEYS = {"name", "headers", "cookies", "generator", "body", "examples"}


@lru_cache(maxsize=4)
def load_technologies(path: Path = TECHNOLOGIES_FILE) -> tuple[Technology, ...]:
    """The fingerprints, compiled; ValueError naming the entry when one is malformed."""
    with open(path, "rb") as f:
        entries = tomllib.load(f).get("technology", [])
    techs = []
    for entry in entries:
        name = entry.get("name", "?")
        try:
            unknown = set(entry) - _TECHNOLOGY_KEYS
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            tech = Technology(
                name=entry["name"],
                headers={k.lower(): re.compile(v) for k, v in entry.get("headers", {}).items()},
                cookies=frozenset(c.lower() for c in entry.get("cookies", [])),
                generator=re.compile(entry["generator"]) if "generator" in entry else None,
                body=tuple(re.compile(p.encode()) for p in entry.get("body", [])),
                examples=tuple(entry.get("examples", [])),
            )
        except (KeyError, TypeError, AttributeError, ValueError, re.error) as exc:
            raise ValueError(f"{path.name}: technology {name!r}: {exc}") from None
        if not (tech.headers or tech.cookies or tech.generator or tech.body):
            raise ValueError(f"{path.name}: technology {name!r} has no signals")
        techs.append(tech)
    return tuple(techs)


def detect_technologies(
    headers: Iterable[tuple[str, str]], body: bytes, technologies: Iterable[Technology] | None = None
) -> set[str]:
    """Names of the technologies whose signals appear in these response headers (of every answer in
    a redirect chain) and this body."""
    values: dict[str, list[str]] = {}
    cookies: set[str] = set()
    for name, value in headers:
        name = name.lower()
        values.setdefault(name, []).append(value)
        if name == "set-cookie":
            cookies.add(value.split("=", 1)[0].strip().lower())
    found_generators = generators(body)
    found = set()
    for tech in load_technologies() if technologies is None else technologies:
        if (
            (tech.cookies & cookies)
            or any(p.search(v) for h, p in tech.headers.items() for v in values.get(h, ()))
            or (tech.generator and any(tech.generator.search(g) for g in found_generators))
            or any(p.search(body) for p in tech.body)
        ):
            found.add(tech.name)
    return found
