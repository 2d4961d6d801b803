"""Subdomain brute force that wildcard zones cannot fool, and the wordlist it uses."""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name

from app.errors import DNSFailure
from app.scanners.dns.lookups import Progress, _all, _Failures, _run_all
from app.scanners.dns.transport import Resolver, normalise_name
from app.settings import get_settings

log = logging.getLogger("app.scanners.dns")

BUILTIN_WORDLIST = Path(__file__).resolve().parent.parent / "data" / "subdomains.txt"
WILDCARD_PROBES = 3

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True)
class _Found:
    exists: bool
    addresses: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()


async def _addresses(resolver: Resolver, name: str) -> _Found:
    """A, or AAAA when there is no A: one query for the NXDOMAIN that most brute-force names get."""
    a = await resolver.lookup(name, "A")
    if not a.exists:
        return _Found(False)
    if a.values or a.rcode == "NXDOMAIN":
        return _Found(True, a.values, a.cnames)
    aaaa = await resolver.lookup(name, "AAAA")
    return _Found(True, aaaa.values, a.cnames or aaaa.cnames)


def random_label(length: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


@dataclass(frozen=True)
class _Wildcard:
    present: bool  # random names exist (even with no address: a wildcard of other types)
    answers: frozenset[str] = frozenset()  # addresses and CNAME targets random names got
    targets: frozenset[str] = frozenset()  # the CNAME targets alone

    def synthesised(self, found: _Found) -> bool:
        """Could this answer have come from the wildcard? Then we can't tell the name is real."""
        if not self.present:
            return False
        if not found.addresses and not found.cnames:
            # No address, like the wildcard's own answer? A wildcard with addresses would have given them.
            return not self.answers
        if found.cnames and found.cnames[0] in self.targets:
            return True  # same alias: the addresses behind it may rotate (CDNs)
        return set(found.addresses) | set(found.cnames) <= self.answers


async def _probe(resolver: Resolver, zone: str, probes: int) -> _Wildcard:
    names = [f"{random_label()}.{zone}" for _ in range(max(1, probes))]
    lookups = await _all([resolver.lookup(n, t) for n in names for t in ("A", "AAAA")])
    present = any(a.exists for a in lookups)
    answers = {v for a in lookups for v in (*a.values, *a.cnames)}
    targets = {a.cnames[0] for a in lookups if a.cnames}
    return _Wildcard(present, frozenset(answers), frozenset(targets))


async def wildcard_answers(resolver: Resolver, zone: str, probes: int = WILDCARD_PROBES) -> set[str]:
    """Addresses (A, AAAA) and CNAME targets that random names under `zone` get; empty if there is no wildcard.

    Raises DNSFailure when the probes get no answer at all.
    """
    return set((await _probe(resolver, normalise_name(zone), probes)).answers)


async def brute_force(
    resolver: Resolver,
    domain: str,
    labels: Iterable[str],
    progress: Progress | None = None,
    *,
    warnings: list[str] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """Try `label.domain` for every label: ({name: addresses}, wildcard zones found).

    Under a wildcard zone a name is kept only if its answer differs from the wildcard's (a real host that
    shares the wildcard's address is indistinguishable and dropped). A name that exists without an address
    (a dangling CNAME, an empty non-terminal) is kept with [] outside wildcard zones. Each name found is
    probed once more for a wildcard of its own (*.dev.example.com), which is listed too.

    Raises DNSFailure if the zone itself can't be probed (a dead resolver): there'd be nothing to trust.
    """
    zone = normalise_name(domain)
    wildcard = await _probe(resolver, zone, WILDCARD_PROBES)
    failures = _Failures()
    candidates: dict[str, None] = {}
    for label in labels:
        try:
            candidates.setdefault(normalise_name(f"{label}.{zone}"), None)
        except ValueError as exc:
            failures.add(str(exc))
    found: dict[str, list[str]] = {}

    async def one(name: str) -> None:
        try:
            result = await _addresses(resolver, name)
        except DNSFailure as exc:
            failures.add(str(exc))
            return
        if not result.exists or wildcard.synthesised(result):
            return
        found[name] = list(result.addresses)

    zones = [zone] if wildcard.present else []
    sub_zones: set[str] = set()

    async def probe_below(name: str) -> None:
        try:
            if (await _probe(resolver, name, 1)).present:
                sub_zones.add(name)
        except DNSFailure as exc:
            failures.add(f"wildcard probe under {name}: {exc}")

    try:
        await _run_all(list(candidates), one, resolver.concurrency, progress)
        await _run_all(sorted(found), probe_below, resolver.concurrency, None)
    finally:
        failures.report(warnings)
    return dict(sorted(found.items())), zones + sorted(sub_zones)


# --- wordlist ---------------------------------------------------------------------------------------------


def _label_ascii(label: str) -> str | None:
    text = label.strip().lower()
    if not text.isascii():
        try:
            text = dns.name.IDNA_DEFAULT.encode(text).decode("ascii").lower()
        except (dns.exception.DNSException, UnicodeError):
            return None
    return text if _LABEL.fullmatch(text) else None


def load_wordlist(path: Path | None = None) -> list[str]:
    """Labels for brute force, one a line: `path`, else WORDLIST_FILE, else the shipped list.

    Lines are lower-cased, IDN labels become punycode, "a.b" entries are allowed; blank lines, `#` comments,
    invalid labels and duplicates are skipped (the count is logged).
    """
    if path is None:
        path = get_settings().wordlist_file or BUILTIN_WORDLIST
    words: dict[str, None] = {}
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            text = line.strip().rstrip(".")
            if not text or text.startswith("#"):
                continue
            labels = [_label_ascii(part) for part in text.split(".")]
            if len(text) > 200 or not all(labels):
                skipped += 1
                continue
            words.setdefault(".".join(label for label in labels if label), None)
    if skipped:
        log.info("wordlist %s: %d invalid lines skipped", path, skipped)
    return list(words)
