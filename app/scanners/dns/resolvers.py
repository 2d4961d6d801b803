"""Which nameservers a scan asks: the RESOLVERS setting, a scan's own option, or the system's.

Nameservers are given by address (a scanner must not depend on the resolver it is configuring), as
HOST, HOST:PORT or [IPv6]:PORT.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

from app.errors import ResolverError
from app.settings import get_settings


def parse_resolver(spec: str) -> tuple[str, int]:
    """ "1.1.1.1" -> ("1.1.1.1", 53); "127.0.0.1:5353"; "[::1]:53"; a bare IPv6 address gets port 53."""
    text = spec.strip()
    if not text:
        raise ResolverError("empty resolver; expected HOST[:PORT] such as 1.1.1.1 or 127.0.0.1:5353")
    if not (text.isascii() and text.isprintable()):  # ipaddress takes any IPv6 zone: "fe80::1%\x00é"
        raise ResolverError(f"resolver {spec!r}: expected an IP address and port in plain ASCII, e.g. 127.0.0.1:5353")
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ResolverError(f"resolver {spec!r}: expected [IPv6]:PORT such as [::1]:53")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:  # IPv4:port (a bare IPv6 address has several colons)
        host, port_text = text.split(":")
    else:
        host = text
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ResolverError(
            f"resolver {spec!r}: {host!r} is not an IP address (nameservers are given by address, "
            "e.g. 1.1.1.1, 127.0.0.1:5353 or [2606:4700:4700::1111]:53)"
        ) from None
    port = 53
    if port_text is not None:
        # isdigit() alone lets "²" (int() refuses it) and 5,000-digit numbers (int() refuses those too) through.
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
            raise ResolverError(f"resolver {spec!r}: port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return str(address), port


def system_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """The `nameserver` lines of resolv.conf (what the machine itself uses)."""
    found: list[tuple[str, int]] = []
    try:
        lines = resolv_conf.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise ResolverError(f"no RESOLVERS set and {resolv_conf} is unreadable: {exc.strerror or exc}") from None
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            with contextlib.suppress(ResolverError):
                found.append(parse_resolver(words[1]))  # a link-local address keeps its %interface
    if not found:
        raise ResolverError(f"no RESOLVERS set and no nameserver in {resolv_conf}")
    return list(dict.fromkeys(found))


def resolvers_from_settings() -> list[tuple[str, int]]:
    """The RESOLVERS setting parsed; when it is empty, the system's nameservers."""
    specs = [s for s in get_settings().resolvers.split(",") if s.strip()]
    if not specs:
        return system_resolvers()
    return list(dict.fromkeys(parse_resolver(s) for s in specs))
