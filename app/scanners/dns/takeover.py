"""Subdomain takeover hints: a CNAME into a provider's namespace whose target no longer exists.

The providers are data (data/takeover.toml), each with examples and counter-examples that are
checked when the file is loaded.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path

from app.scanners.dns.transport import Resolver

TAKEOVER_FILE = Path(__file__).resolve().parent.parent / "data" / "takeover.toml"


@dataclass(frozen=True)
class TakeoverProvider:
    name: str
    status: str  # "vulnerable" or "edge case" (as can-i-take-over-xyz rates it)
    patterns: tuple[str, ...]
    reference: str = ""
    note: str = ""


def _suffix_key(host: str) -> str:
    return ".".join(host.rsplit(".", 2)[-2:])


@lru_cache
def load_takeover_providers(path: Path = TAKEOVER_FILE) -> dict[str, tuple[tuple[str, TakeoverProvider], ...]]:
    """Patterns indexed by their last two labels (the cheap prefilter); every example is checked on load."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    index: dict[str, list[tuple[str, TakeoverProvider]]] = {}
    for entry in data.get("provider", []):
        name = entry.get("name", "?")
        patterns = tuple(p.lower() for p in entry.get("patterns", []))
        if entry.get("status") not in ("vulnerable", "edge case") or not patterns:
            raise ValueError(f"{path}: provider {name!r} needs patterns and status 'vulnerable' or 'edge case'")
        provider = TakeoverProvider(name, entry["status"], patterns, entry.get("reference", ""), entry.get("note", ""))
        for pattern in patterns:
            if "*" in _suffix_key(pattern) or not pattern.startswith("*."):
                raise ValueError(f"{path}: provider {name!r}: pattern {pattern!r} must be *.<literal suffix>")
            index.setdefault(_suffix_key(pattern), []).append((pattern, provider))
        for example in entry.get("examples", []):
            if not any(fnmatchcase(example, p) for p in patterns):
                raise ValueError(f"{path}: provider {name!r}: example {example!r} matches no pattern")
        for example in entry.get("not_examples", []):
            if any(fnmatchcase(example, p) for p in patterns):
                raise ValueError(f"{path}: provider {name!r}: counter-example {example!r} matches a pattern")
    return {key: tuple(value) for key, value in index.items()}


def takeover_provider(cname_target: str) -> TakeoverProvider | None:
    """The provider whose namespace `cname_target` is in, if it is one that allows claiming names."""
    target = cname_target.strip().rstrip(".").lower()
    for pattern, provider in load_takeover_providers().get(_suffix_key(target), ()):
        if fnmatchcase(target, pattern):
            return provider
    return None


def takeover_candidate(cname_target: str, resolves: bool) -> str | None:
    """The provider's name when a CNAME points into a claimable namespace and the target does not resolve."""
    if resolves:
        return None
    provider = takeover_provider(cname_target)
    return provider.name if provider else None


async def takeover_check(resolver: Resolver, cname_target: str) -> str | None:
    """takeover_candidate() with the resolving done: only provider targets cost a lookup (NXDOMAIN = dangling).

    Raises DNSFailure when the target can't be checked (better a warning than a false "safe").
    """
    if takeover_provider(cname_target) is None:
        return None
    answer = await resolver.lookup(cname_target, "A")
    return takeover_candidate(cname_target, resolves=answer.rcode != "NXDOMAIN")
