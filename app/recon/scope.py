"""What a target is and what may be contacted: validated inputs and include/exclude rules.

Domains are stored as punycode (IDNs converted), networks as CIDRs no bigger than the configured
limit. A scope decides, for every name and address a scan meets, whether it may be touched:
excluded beats included; a name is in scope under one of the target's domains (or an explicit
include pattern); an address is in scope inside one of its networks, or when an in-scope name
resolves to it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.errors import InvalidURL, ScopeError
from app.models import Target
from app.net.names import normalise_domain
from app.net.urls import check_url
from app.settings import get_settings

MAX_ITEMS = 10_000  # per list in one target


def normalise_network(value: str, max_prefix: int | None = None) -> str:
    """An IP address or CIDR as stored ("10.0.0.0/24", "192.0.2.7/32"); refuses networks over the limit."""
    if max_prefix is None:
        max_prefix = get_settings().scope_max_cidr_prefix
    raw = (value or "").strip()
    try:
        if not (raw.isascii() and raw.isprintable()):  # ipaddress takes any IPv6 zone: "fe80::1%\x00é"
            raise ValueError(raw)
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ScopeError(f"{value!r} is not an IP address or CIDR") from None
    # The same cap in addresses for IPv6: /16 for IPv4 is 2**16 addresses, so /112 for IPv6.
    limit = 2 ** (32 - max_prefix)
    if network.num_addresses > limit:
        smallest = max_prefix if network.version == 4 else 128 - (32 - max_prefix)
        raise ScopeError(
            f"{raw} holds {network.num_addresses:,} addresses; the limit is /{smallest} "
            f"({limit:,} addresses, SCOPE_MAX_CIDR_PREFIX)"
        )
    return str(network)


def normalise_pattern(value: str) -> str:
    """A scope rule: a domain, `*.domain` (subdomains only), an address or a CIDR."""
    raw = (value or "").strip().lower()
    if raw.startswith("*."):
        return "*." + normalise_domain(raw[2:])
    try:
        if raw.isascii() and raw.isprintable():  # (ipaddress takes any IPv6 zone, even "%\x00é")
            return str(ipaddress.ip_network(raw, strict=False))  # any size: a rule only filters, it adds nothing
    except ValueError:
        pass
    try:
        return normalise_domain(raw)
    except ScopeError:
        raise ScopeError(f"{value!r} is not a scope rule (a domain, *.domain, an IP address or a CIDR)") from None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, tuple):  # from Python callers
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScopeError(f"'{key}' must be a list of strings")
    if len(value) > MAX_ITEMS:
        raise ScopeError(f"'{key}' has {len(value):,} entries; the limit is {MAX_ITEMS:,}")
    return value


@dataclass
class Scope:
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, domains=(), cidrs=(), urls=(), scope: dict | None = None) -> Scope:
        """Validate everything a user gave; raises ScopeError naming the first bad entry."""
        # Types are checked by _strings: list() here would split a string and take a dict's keys.
        spec = {"domains": domains, "cidrs": cidrs, "urls": urls}
        checked_urls = []
        for url in _strings(spec, "urls"):
            try:
                checked_urls.append(check_url(url))
            except InvalidURL as exc:
                raise ScopeError(f"{url!r}: {exc}") from None
        rules = scope or {}
        if not isinstance(rules, dict) or set(rules) - {"include", "exclude"}:
            raise ScopeError("'scope' must be an object with 'include' and/or 'exclude' lists")
        built = cls(
            domains=_unique(normalise_domain(d) for d in _strings(spec, "domains")),
            networks=_unique(normalise_network(c) for c in _strings(spec, "cidrs")),
            urls=_unique(checked_urls),
            include=_unique(normalise_pattern(p) for p in _strings(rules, "include")),
            exclude=_unique(normalise_pattern(p) for p in _strings(rules, "exclude")),
        )
        if not (built.domains or built.networks or built.urls):
            raise ScopeError("a target needs at least one domain, CIDR or URL")
        return built

    @classmethod
    def parse_target(cls, text: str) -> Scope:
        """A quick target typed on the command line or in the API: a domain, an address/CIDR or a URL."""
        raw = (text or "").strip()
        if not raw:
            raise ScopeError("a target is required: a domain, an IP address or CIDR, or a URL")
        if "://" in raw:
            return cls.build(urls=[raw])
        return cls.build(cidrs=[raw]) if _looks_like_address(raw) else cls.build(domains=[raw])

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Scope:
        """A scope stored in its `as_dict()` form, back (it was validated when it was stored)."""
        rules = spec.get("scope", {})
        return cls(
            domains=spec.get("domains", []),
            networks=spec.get("cidrs", []),
            urls=spec.get("urls", []),
            include=rules.get("include", []),
            exclude=rules.get("exclude", []),
        )

    @classmethod
    def of_target(cls, target: Target) -> Scope:
        """A stored target's scope."""
        rules = target.scope or {}
        return cls(target.domains, target.cidrs, target.urls, rules.get("include", []), rules.get("exclude", []))

    def as_dict(self) -> dict[str, Any]:
        return {
            "domains": self.domains,
            "cidrs": self.networks,
            "urls": self.urls,
            "scope": {"include": self.include, "exclude": self.exclude},
        }

    # --- decisions ---------------------------------------------------------------------------

    def _matches(self, rules: list[str], name: str | None, ip: ipaddress._BaseAddress | None) -> bool:
        for rule in rules:
            if rule.startswith("*."):
                if name and name.endswith(rule[1:]):
                    return True
            elif "/" in rule:
                if ip is not None and ip in ipaddress.ip_network(rule):
                    return True
            elif name and (name == rule or name.endswith("." + rule)):
                return True
        return False

    def name_in_scope(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        if self._matches(self.exclude, name, None):
            return False
        owned = any(name == d or name.endswith("." + d) for d in self.domains)
        owned |= any(name == _host(u) for u in self.urls)
        return owned or self._matches(self.include, name, None)

    def address_in_scope(self, address: str, via_names: Iterable[str] = ()) -> bool:
        """An address may be contacted when it is inside the target's networks, or an in-scope
        name resolves to it; an exclude rule (address, CIDR or one of its names) always wins."""
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        names = [n.lower().rstrip(".") for n in via_names]
        if self._matches(self.exclude, None, ip) or any(self._matches(self.exclude, n, None) for n in names):
            return False
        if any(ip in ipaddress.ip_network(n) for n in self.networks) or self._matches(self.include, None, ip):
            return True
        if any(_host(u) == str(ip) for u in self.urls):
            return True
        return any(self.name_in_scope(n) for n in names)

    def addresses(self) -> list[str]:
        """Every address of the target's own networks (bounded by the CIDR limit)."""
        out: list[str] = []
        for net in self.networks:
            network = ipaddress.ip_network(net)
            hosts = [network.network_address] if network.num_addresses == 1 else list(network.hosts())
            out.extend(str(h) for h in hosts if self.address_in_scope(str(h)))
        return _unique(out)


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _looks_like_address(raw: str) -> bool:
    head = raw.split("/", 1)[0]
    try:
        ipaddress.ip_address(head)
        return True
    except ValueError:
        return ":" in head or bool(re.fullmatch(r"[\d.]+", head))
