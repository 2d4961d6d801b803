"""Subdomain takeover: which cloud namespaces let a stranger claim a name, and how each one is decided.

The providers are data (data/takeover.toml). A CNAME into a provider's namespace is decided one of two ways:

- by DNS (today's path, every provider with `nxdomain_claimable`): the target does not exist (NXDOMAIN),
  so whoever registers that name at the provider serves the subdomain — `takeover_verdict()` here;
- by HTTP (providers with an `http` fingerprint): the target resolves to the provider's shared edge,
  which answers for the subdomain with its "nothing is configured for this name" page — the check is
  app/scanners/http/takeover.py; this module holds the fingerprint and how it matches.

Every provider's `examples` / `not_examples` (CNAME targets) and `http_examples` / `http_not_examples`
(answers) are checked when the file is loaded: a file that contradicts itself does not load.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.scanners.dns.transport import Resolver

TAKEOVER_FILE = Path(__file__).resolve().parent.parent / "data" / "takeover.toml"
STATUSES = ("vulnerable", "edge case")  # as EdOverflow/can-i-take-over-xyz rates the provider
CONFIDENCES = ("confirmed", "likely")
SCHEMES = ("https", "http", "both")
# What a check concludes: the first two are takeovers (a finding), the last two are not.
VERDICTS = ("confirmed", "likely", "not vulnerable", "unknown")
MAX_EXCERPT_BYTES = 512
_APOSTROPHES = re.compile(r"&#0*39;|&#x0*27;|&apos;|&rsquo;|\u2019", re.IGNORECASE)


def normalise_text(text: str) -> str:
    """What fingerprints are compared with: lower case, one space for any run of white space, and the
    apostrophe however the page wrote it (' &#39; &#x27; &apos; &rsquo; ’)."""
    return " ".join(_APOSTROPHES.sub("'", text).lower().split())


@dataclass(frozen=True)
class HttpFingerprint:
    """The page a provider serves for a name nobody has claimed. Every part given must match: the
    status is one of `status`; the body holds one of `body` and all of `body_all`; a header matches
    one of `header` ("name" = present, "name: text" = its value contains the text). Text compares
    without regard to case, white space or how an apostrophe is written; a `*` in a body string
    stands for a run of non-space characters."""

    status: tuple[int, ...] = ()
    body: tuple[str, ...] = ()
    body_all: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    scheme: str = "both"  # where to ask: https, http, or both at once

    def match(self, status: int, headers: Iterable[tuple[str, str]], body: bytes | str) -> tuple[str, ...] | None:
        """What matched (for the evidence), or None when the answer is not this page."""
        if self.status and status not in self.status:
            return None
        matched = [f"status {status}"] if self.status else []
        if self.body or self.body_all:
            text = normalise_text(body if isinstance(body, str) else body.decode("utf-8", "replace"))
            found = [s for s in self.body if _contains(text, s)]
            if self.body and not found:
                return None
            if not all(_contains(text, s) for s in self.body_all):
                return None
            matched += [f"body: {s}" for s in (*found[:1], *self.body_all)]
        if self.header:
            lines = [f"{k.strip().lower()}: {normalise_text(v)}" for k, v in headers]
            hit = next((h for h in self.header if _header_matches(h, lines)), None)
            if hit is None:
                return None
            matched.append(f"header: {hit}")
        return tuple(matched)


@lru_cache(maxsize=1024)
def _wildcard(wanted: str) -> re.Pattern[str]:
    parts = (re.escape(p) for p in normalise_text(wanted).split("*"))
    return re.compile(r"\S{1,300}?".join(parts))


def _contains(text: str, wanted: str) -> bool:
    """Whether normalised `text` holds `wanted`; a `*` in it stands for a run of non-space characters
    (a name: "Do you want to register *.wordpress.com?")."""
    if "*" in wanted:
        return _wildcard(wanted).search(text) is not None
    return normalise_text(wanted) in text


def _header_matches(wanted: str, lines: list[str]) -> bool:
    name, _, value = wanted.partition(":")
    name, value = name.strip().lower(), normalise_text(value)
    return any(line.startswith(f"{name}: ") and value in line[len(name) + 2 :] for line in lines)


@dataclass(frozen=True)
class TakeoverProvider:
    name: str
    status: str  # "vulnerable" or "edge case" (as can-i-take-over-xyz rates it)
    patterns: tuple[str, ...]  # the `cname` patterns
    reference: str = ""
    note: str = ""
    confidence: str = "likely"  # what a match of its decisive check means: "confirmed" or "likely"
    nxdomain_required: bool = True  # only a dangling target is a takeover (DNS decides, no HTTP check)
    nxdomain_claimable: bool = True  # a dangling target alone is a candidate (the name can be registered)
    http: HttpFingerprint | None = None  # the provider's page for an unclaimed name (HTTP decides)


@dataclass(frozen=True)
class TakeoverVerdict:
    """What a takeover check concluded about one name, with what it saw."""

    verdict: str  # one of VERDICTS
    provider: str
    method: str  # "dns" (the CNAME target does not exist) or "http" (the provider's unclaimed page)
    cname: str = ""  # the provider name the subdomain points at
    url: str = ""  # what was asked (http)
    status: int | None = None
    matched: tuple[str, ...] = ()  # the fingerprint parts that matched (from our data file, not the target)
    excerpt: str = ""  # at most MAX_EXCERPT_BYTES of the answer, escaped (escape_excerpt)
    truncated: bool = False  # the body was cut at the size cap or the deadline
    reason: str = ""  # why "unknown", or what "not vulnerable" rests on
    reference: str = ""

    @property
    def vulnerable(self) -> bool:
        return self.verdict in CONFIDENCES

    def as_dict(self) -> dict[str, Any]:
        """The form a scan result stores ({"confidence", "method", "evidence"...})."""
        data = asdict(self)
        data["confidence"] = data.pop("verdict")
        data["matched"] = list(self.matched)
        return {k: v for k, v in data.items() if v not in ("", None, [], False)}


def escape_excerpt(data: bytes, limit: int = MAX_EXCERPT_BYTES) -> str:
    """A target's bytes as one line of text we may store and show: printable characters kept, controls,
    format characters and undecodable bytes written as escapes (\\n, \\x1b, \\u202e), a backslash doubled;
    at most `limit` bytes once UTF-8 encoded. (The UI escapes HTML on top: this is about what is seen.)"""
    out: list[str] = []
    size = 0
    for char in data.decode("utf-8", "surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            piece = f"\\x{code - 0xDC00:02x}"
        elif char == "\\":
            piece = "\\\\"
        elif char in "\n\r\t":
            piece = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char]
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        else:
            piece = char
        size += len(piece.encode())
        if size > limit:
            break
        out.append(piece)
    return "".join(out)


def _suffix_key(host: str) -> str:
    return ".".join(host.rsplit(".", 2)[-2:])


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{what} must be a list of non-empty strings")
    return tuple(value)


def _fingerprint(raw: Any) -> HttpFingerprint:
    if not isinstance(raw, dict):
        raise ValueError("http must be a table { status, body, body_all, header, scheme }")
    unknown = set(raw) - {"status", "body", "body_all", "header", "scheme"}
    if unknown:
        raise ValueError(f"http: unknown key(s) {', '.join(sorted(unknown))}")
    status = raw.get("status", [])
    if not isinstance(status, list) or not all(isinstance(s, int) and 100 <= s <= 599 for s in status):
        raise ValueError("http.status must be a list of HTTP status codes")
    scheme = raw.get("scheme", "both")
    if scheme not in SCHEMES:
        raise ValueError(f"http.scheme must be one of {', '.join(SCHEMES)}")
    fingerprint = HttpFingerprint(
        tuple(status),
        _strings(raw.get("body", []), "http.body"),
        _strings(raw.get("body_all", []), "http.body_all"),
        _strings(raw.get("header", []), "http.header"),
        scheme,
    )
    if not (fingerprint.body or fingerprint.body_all or fingerprint.header):
        raise ValueError("http needs a body or header string: a status alone says nothing")
    return fingerprint


def _answer(example: Any, fingerprint: HttpFingerprint) -> tuple[int, list[tuple[str, str]], str]:
    """An http example as (status, headers, body): a string is a body served with the fingerprint's
    first status; a table is { status, headers = { name = value }, body }."""
    default = fingerprint.status[0] if fingerprint.status else 200
    if isinstance(example, str):
        return default, [], example
    if isinstance(example, dict) and set(example) <= {"status", "headers", "body"}:
        headers = example.get("headers", {})
        if isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values()):
            return int(example.get("status", default)), list(headers.items()), str(example.get("body", ""))
    raise ValueError(f"an http example must be a body or a table {{ status, headers, body }}, not {example!r}")


def _provider(entry: dict[str, Any], path: Path) -> TakeoverProvider:
    name = entry.get("name", "?")
    where = f"{path}: provider {name!r}"
    raw_patterns = entry.get("cname", entry.get("patterns", []))
    patterns = tuple(p.lower() for p in raw_patterns) if isinstance(raw_patterns, list) else ()
    if entry.get("status") not in STATUSES or not patterns:
        raise ValueError(f"{where} needs cname patterns and status 'vulnerable' or 'edge case'")
    for pattern in patterns:
        wildcard_ok = pattern.startswith("*.") and "*" not in _suffix_key(pattern)
        literal_ok = "*" not in pattern and "." in pattern
        if not (wildcard_ok or literal_ok) or "." not in _suffix_key(pattern):
            raise ValueError(f"{where}: pattern {pattern!r} must be *.<literal suffix> or a literal name")
    for example in entry.get("examples", []):
        if not any(_pattern_matches(example, p) for p in patterns):
            raise ValueError(f"{where}: example {example!r} matches no pattern")
    for example in entry.get("not_examples", []):
        if any(_pattern_matches(example, p) for p in patterns):
            raise ValueError(f"{where}: counter-example {example!r} matches a pattern")
    confidence = entry.get("confidence")
    if confidence not in CONFIDENCES:
        raise ValueError(f"{where}: confidence must be 'confirmed' or 'likely'")
    if not str(entry.get("reference", "")).startswith("https://"):
        raise ValueError(
            f"{where}: reference must be the https:// address of the provider's documentation or a write-up"
        )
    try:
        fingerprint = _fingerprint(entry["http"]) if "http" in entry else None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    required = entry.get("nxdomain_required")
    claimable = entry.get("nxdomain_claimable", True)
    if not isinstance(required, bool) or not isinstance(claimable, bool):
        raise ValueError(f"{where}: nxdomain_required (and nxdomain_claimable, if given) must be true or false")
    if required and fingerprint is not None:
        raise ValueError(f"{where}: nxdomain_required providers are decided by DNS: drop the http fingerprint")
    if not required and fingerprint is None:
        raise ValueError(f"{where}: without nxdomain_required it needs an http fingerprint (what else decides?)")
    if required and not claimable:
        raise ValueError(f"{where}: nxdomain_required with nxdomain_claimable = false can never be a takeover")
    provider = TakeoverProvider(
        name,
        entry["status"],
        patterns,
        entry.get("reference", ""),
        entry.get("note", ""),
        confidence,
        required,
        claimable,
        fingerprint,
    )
    if fingerprint is not None:
        if not entry.get("http_examples") or not entry.get("http_not_examples"):
            raise ValueError(f"{where}: an http fingerprint needs http_examples and http_not_examples")
        for example in entry["http_examples"]:
            if fingerprint.match(*_answer(example, fingerprint)) is None:
                raise ValueError(f"{where}: http example {str(example)[:80]!r} does not match the fingerprint")
        for example in entry["http_not_examples"]:
            if fingerprint.match(*_answer(example, fingerprint)) is not None:
                raise ValueError(f"{where}: http counter-example {str(example)[:80]!r} matches the fingerprint")
    elif entry.get("http_examples") or entry.get("http_not_examples"):
        raise ValueError(f"{where}: http examples without an http fingerprint")
    return provider


def _pattern_matches(host: str, pattern: str) -> bool:
    return fnmatchcase(host, pattern) if pattern.startswith("*.") else host == pattern


@dataclass(frozen=True)
class _Table:
    providers: tuple[TakeoverProvider, ...]
    index: dict[str, tuple[tuple[str, TakeoverProvider], ...]] = field(default_factory=dict)


@lru_cache
def _load(path: Path) -> _Table:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    providers = tuple(_provider(entry, path) for entry in data.get("provider", []))
    names = [p.name for p in providers]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two providers share a name")
    index: dict[str, list[tuple[str, TakeoverProvider]]] = {}
    for provider in providers:
        for pattern in provider.patterns:
            index.setdefault(_suffix_key(pattern), []).append((pattern, provider))
    return _Table(providers, {key: tuple(value) for key, value in index.items()})


def load_takeover_providers(path: Path = TAKEOVER_FILE) -> dict[str, tuple[tuple[str, TakeoverProvider], ...]]:
    """Patterns indexed by their last two labels (the cheap prefilter); every example is checked on load."""
    return _load(path).index


def all_takeover_providers(path: Path = TAKEOVER_FILE) -> tuple[TakeoverProvider, ...]:
    """Every provider of the file, in file order."""
    return _load(path).providers


def takeover_provider(cname_target: str) -> TakeoverProvider | None:
    """The provider whose namespace `cname_target` is in, if it is one that allows claiming names."""
    target = cname_target.strip().rstrip(".").lower()
    for pattern, provider in load_takeover_providers().get(_suffix_key(target), ()):
        if _pattern_matches(target, pattern):
            return provider
    return None


def http_takeover_provider(cname_chain: Iterable[str]) -> tuple[str, TakeoverProvider] | None:
    """(target, provider) for the first name of a CNAME chain that is in the namespace of a provider the
    HTTP answer decides; None when no name of the chain is."""
    for target in cname_chain:
        provider = takeover_provider(target)
        if provider is not None and provider.http is not None:
            return target.strip().rstrip(".").lower(), provider
    return None


def takeover_candidate(cname_target: str, resolves: bool) -> str | None:
    """The provider's name when a CNAME points into a claimable namespace and the target does not resolve."""
    if resolves:
        return None
    provider = takeover_provider(cname_target)
    return provider.name if provider and provider.nxdomain_claimable else None


def dangling_verdict(provider: TakeoverProvider, cname_target: str) -> TakeoverVerdict:
    """The DNS-decided verdict for a target that does not exist: the provider's confidence when DNS is its
    decisive check, "likely" when its HTTP answer would have been (there is nothing to ask)."""
    return TakeoverVerdict(
        provider.confidence if provider.nxdomain_required else "likely",
        provider.name,
        "dns",
        cname=cname_target.strip().rstrip(".").lower(),
        reason="the CNAME target does not exist (NXDOMAIN): whoever registers it at the provider serves this name",
        reference=provider.reference,
    )


async def takeover_verdict(resolver: Resolver, cname_target: str) -> TakeoverVerdict | None:
    """The DNS check of a CNAME target: a verdict when it is in a claimable namespace and does not exist,
    None otherwise. Only provider targets cost a lookup.

    Raises DNSFailure when the target can't be checked (better a warning than a false "safe").
    """
    provider = takeover_provider(cname_target)
    if provider is None or not provider.nxdomain_claimable:
        return None
    answer = await resolver.lookup(cname_target, "A")
    return dangling_verdict(provider, cname_target) if answer.rcode == "NXDOMAIN" else None


async def takeover_check(resolver: Resolver, cname_target: str) -> str | None:
    """takeover_verdict() as the provider's name (None: not a candidate)."""
    verdict = await takeover_verdict(resolver, cname_target)
    return verdict.provider if verdict else None
