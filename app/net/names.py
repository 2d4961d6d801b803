"""Host names and addresses as AssetMon stores and compares them."""

from __future__ import annotations

import ipaddress
import re

from app.errors import InvalidName

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_domain(value: str) -> str:
    """A domain name as stored: lower case, punycode, no trailing dot; raises InvalidName (a ScopeError)."""
    raw = (value or "").strip().rstrip(".")
    if not raw:
        raise InvalidName("an empty domain name")
    if "://" in raw or "/" in raw or ":" in raw or " " in raw:
        raise InvalidName(f"{value!r} is not a domain name (give a URL under 'urls', an address under 'cidrs')")
    try:
        name = raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidName(f"{value!r} is not a valid domain name") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidName(f"{value!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise InvalidName(f"{value!r} looks like an IP address; put it under 'cidrs'")
    return name


def is_address(text: str) -> bool:
    """Whether `text` is an IP address (an IPv6 one may come in brackets, as in URLs)."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def address_key(address: str) -> tuple[int, int]:
    """Sort key for addresses: IPv4 before IPv6, then numerically (10.0.0.2 before 10.0.0.10)."""
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))
