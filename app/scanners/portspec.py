"""Port specs: "80,443,8000-8100", "top100", "top1000,8443", "1-65535" -> sorted unique ports.

The top-ports lists come from data/top_ports.txt (Nmap's frequency data, most common first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from app.errors import PortSpecError

TOP_PORTS_FILE = Path(__file__).resolve().parent / "data" / "top_ports.txt"
MAX_PORT = 65535

_DIGITS = re.compile(r"[0-9]+")
_TOP = re.compile(r"top\s*([0-9]+)", re.IGNORECASE)


@lru_cache(maxsize=1)
def _top_ports() -> tuple[int, ...]:
    lines = TOP_PORTS_FILE.read_text(encoding="ascii").splitlines()
    return tuple(int(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line)


def top_ports(count: int) -> list[int]:
    """The `count` most commonly open TCP ports, most common first (from Nmap's frequency data)."""
    available = _top_ports()
    if not 1 <= count <= len(available):
        raise ValueError(f"top ports go from 1 to {len(available)}, not {count}")
    return list(available[:count])


def parse_ports(spec: str) -> list[int]:
    """Sorted unique ports from a spec such as "80,443,8000-8100", "top100", "top1000,8443" or "1-65535"."""
    if not spec.strip():
        raise PortSpecError("the port spec is empty; give ports such as 80,443,8000-8100 or top100")
    ports: set[int] = set()
    for raw in spec.split(","):
        ports.update(_parse_part(raw.strip(), spec))
    return sorted(ports)


def _parse_part(part: str, spec: str) -> Iterable[int]:
    where = f"in port spec {_shorten(spec)!r}"
    if not part:
        raise PortSpecError(f"empty entry {where}: two commas in a row, or one at either end")
    if top := _TOP.fullmatch(part):
        available = len(_top_ports())
        if len(top.group(1)) > 5 or not 1 <= int(top.group(1)) <= available:
            raise PortSpecError(f"{part!r} {where}: the top-ports lists go from top1 to top{available}")
        return _top_ports()[: int(top.group(1))]
    if "-" in part:
        bounds = [b.strip() for b in part.split("-")]
        if len(bounds) != 2 or not all(_DIGITS.fullmatch(b) for b in bounds):
            raise PortSpecError(f"{_shorten(part)!r} {where} is not a range: write START-END, e.g. 8000-8100")
        start, end = (_port_number(b, where) for b in bounds)
        if start > end:
            raise PortSpecError(f"range {part!r} {where} runs backwards: {start} is greater than {end}")
        return range(start, end + 1)
    return (_port_number(part, where),)


def _port_number(text: str, where: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise PortSpecError(
            f"{_shorten(text)!r} {where} is not a port number, a range such as 8000-8100, or top100/top1000"
        )
    # No int() of a long run of digits: past 4300 digits Python itself refuses it.
    value = int(text) if len(text) <= 5 else MAX_PORT + 1
    if not 1 <= value <= MAX_PORT:
        raise PortSpecError(f"port {_shorten(text)} {where} is out of range: ports go from 1 to {MAX_PORT}")
    return value


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
