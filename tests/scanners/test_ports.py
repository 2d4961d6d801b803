"""The TCP connect scanner against real sockets on 127.0.0.0/8: listeners, closed ports and "black holes".

A black hole is a listener whose accept queue is full: the kernel drops further SYNs, so a connect to it
neither succeeds nor fails - on loopback, the way to get a port that times out without any timing games.
Other processes (and other test runs) may listen on loopback too, so exact-set assertions are made only
over ports this file owns, and a full-range scan is checked against a plain blocking connect.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import PortScanError, PortSpecError
from app.scanners import ports
from app.scanners.ports import scan
from app.scanners.portspec import parse_ports, top_ports

ROOT = Path(__file__).resolve().parents[2]


def scan_sync(*args, **kwargs) -> dict[str, list[int]]:
    """`scan` from these (loop-less) tests."""
    return asyncio.run(scan(*args, **kwargs))


# ---------------------------------------------------------------- port specs


def test_top_ports_come_most_common_first_and_match_nmaps_sets():
    assert top_ports(5) == [80, 23, 443, 21, 22]
    assert len(set(top_ports(1000))) == 1000
    assert parse_ports("top100") == sorted(top_ports(100))
    assert parse_ports("top1000") == sorted(top_ports(1000))
    assert {22, 80, 443, 3389, 8080} <= set(parse_ports("top100"))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [80]),
        ("443,80", [80, 443]),
        ("80,443,8000-8003", [80, 443, 8000, 8001, 8002, 8003]),
        (" 80 , 443 ,\t8000 - 8001 ", [80, 443, 8000, 8001]),
        ("80,80,79-81", [79, 80, 81]),
        ("1", [1]),
        ("65535", [65535]),
        ("5-5", [5]),
        ("1-65535", list(range(1, 65536))),
        ("top100,8443", sorted(set(top_ports(100)) | {8443})),
        ("TOP100", sorted(top_ports(100))),
        ("top 10", sorted(top_ports(10))),
        ("top100,top1000", sorted(top_ports(1000))),
    ],
)
def test_parse_ports_good(spec, expected):
    assert parse_ports(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "the port spec is empty"),
        ("   ", "the port spec is empty"),
        ("0", "port 0 in port spec '0' is out of range: ports go from 1 to 65535"),
        ("70000", "port 70000 in port spec '70000' is out of range"),
        ("80,70000", "port 70000 in port spec '80,70000' is out of range"),
        ("10-5", "range '10-5' in port spec '10-5' runs backwards: 10 is greater than 5"),
        ("0-10", "port 0 in port spec '0-10' is out of range"),
        ("abc", "'abc' in port spec 'abc' is not a port number, a range such as 8000-8100, or top100/top1000"),
        ("80,https", "'https' in port spec '80,https' is not a port number"),
        ("1-2-3", "'1-2-3' in port spec '1-2-3' is not a range: write START-END, e.g. 8000-8100"),
        ("-80", "'-80' in port spec '-80' is not a range"),
        ("80-", "'80-' in port spec '80-' is not a range"),
        ("80,,443", "empty entry in port spec '80,,443'"),
        ("80,", "empty entry in port spec '80,'"),
        ("+80", "'+80' in port spec '+80' is not a port number"),
        ("8_0", "'8_0' in port spec '8_0' is not a port number"),
        ("top0", "'top0' in port spec 'top0': the top-ports lists go from top1 to top1000"),
        ("top5000", "'top5000' in port spec 'top5000': the top-ports lists go from top1 to top1000"),
        ("topx", "'topx' in port spec 'topx' is not a port number"),
    ],
)
def test_parse_ports_bad_names_the_bad_part(spec, message):
    with pytest.raises(PortSpecError) as caught:
        parse_ports(spec)
    assert isinstance(caught.value, ValueError)
    assert message in str(caught.value)


def test_a_long_bad_spec_is_shortened_in_the_message():
    with pytest.raises(PortSpecError) as caught:
        parse_ports(",".join(["80"] * 100) + ",nope")
    assert "'nope'" in str(caught.value)
    assert len(str(caught.value)) < 200


# ---------------------------------------------------------------- loopback lab


def _listener(host: str, backlog: int = 64) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


def _closed_port(host: str) -> int:
    """A port nothing listens on at `host` (binding it proves no wildcard listener holds it either)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _connect_answers(host: str, port: int) -> bool:
    """A plain blocking connect, the reference the scanner is checked against."""
    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex((host, port)) != 0:
            return False
        return sock.getsockname() != sock.getpeername()  # a self-connect is not a listener


class Lab:
    """Sockets opened for one test, closed after it."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def listen(self, host: str, count: int = 1) -> list[int]:
        opened = [_listener(host) for _ in range(count)]
        self.sockets += opened
        return sorted(s.getsockname()[1] for s in opened)

    def black_hole(self, host: str = "127.0.0.1") -> int:
        """A listener with a full accept queue: SYNs to it are dropped, connects to it time out."""
        sock = _listener(host, backlog=0)
        port = sock.getsockname()[1]
        filler = socket.create_connection((host, port), timeout=2)  # takes the one place in the queue
        self.sockets += [sock, filler]
        return port

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    opened = Lab()
    yield opened
    opened.close()


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, float]]:
    """Every connection attempt the scanner starts: (address, port, monotonic time)."""
    seen: list[tuple[str, int, float]] = []
    real = ports._start_probe

    def counting(family: int, address: tuple) -> tuple[int, object]:
        seen.append((address[0], address[1], time.monotonic()))  # list.append is atomic: threads are fine
        return real(family, address)

    monkeypatch.setattr(ports, "_start_probe", counting)
    return seen


def _random_loopback() -> str:
    """An address in 127.0.0.0/8 that other tests on this machine are unlikely to use."""
    rng = random.SystemRandom()
    return f"127.{rng.randrange(100, 250)}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"


# ---------------------------------------------------------------- scanning


def test_finds_exactly_the_open_ports_on_several_hosts(lab):
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    listening = {h: lab.listen(h, 3) for h in hosts}
    closed = [_closed_port(h) for h in hosts for _ in range(3)]
    wanted = sorted({p for ps in listening.values() for p in ps} | set(closed))
    found = scan_sync(hosts, wanted, concurrency=50, timeout=2, retries=0, rate_per_host=0, rate_global=0)
    assert found == listening  # a port open on one address is closed on the others


def test_full_range_scan_of_one_address(lab):
    host = _random_loopback()
    mine = lab.listen(host, 4)
    found = scan_sync([host], parse_ports("1-65535"), timeout=2, retries=1, rate_per_host=0, rate_global=0)
    assert list(found) == [host]
    assert set(mine) <= set(found[host])
    # Anything else reported must be a real listener (one bound to 0.0.0.0 answers on every 127.x address).
    assert [p for p in found[host] if not _connect_answers(host, p)] == []


def test_ipv6_loopback(lab):
    try:
        port = lab.listen("::1")[0]
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    closed = _closed_port("::1")
    found = scan_sync(["::1"], [port, closed], concurrency=10, timeout=2, retries=0, rate_per_host=0, rate_global=0)
    assert found == {"::1": [port]}


def test_hosts_come_back_as_given_and_ports_in_any_order(lab):
    port = lab.listen("127.0.0.1")[0]
    closed = _closed_port("127.0.0.1")
    found = scan_sync(["127.0.0.1", "127.0.0.1"], [closed, port, port], timeout=2, rate_per_host=0, rate_global=0)
    assert found == {"127.0.0.1": [port]}


def test_timeouts_are_retried_and_are_not_open(lab, attempts):
    holes = [lab.black_hole() for _ in range(2)]
    port = lab.listen("127.0.0.1")[0]
    closed = _closed_port("127.0.0.1")
    found = scan_sync(
        ["127.0.0.1"], [*holes, port, closed], timeout=0.2, retries=2, concurrency=10, rate_per_host=0, rate_global=0
    )
    assert found == {"127.0.0.1": [port]}
    tries = {p: sum(1 for _, q, _ in attempts if q == p) for p in [*holes, port, closed]}
    assert tries == {holes[0]: 3, holes[1]: 3, port: 1, closed: 1}


def test_progress_is_reported_every_few_hundred_probes_and_at_the_end():
    calls: list[tuple[int, int]] = []
    wanted = list(range(20000, 23000))  # whatever listens there does not matter
    concurrency = 100
    scan_sync(
        ["127.0.0.1"],
        wanted,
        progress=lambda d, t: calls.append((d, t)),
        concurrency=concurrency,
        rate_per_host=0,
        rate_global=0,
    )
    assert calls[-1] == (len(wanted), len(wanted))
    assert all(t == len(wanted) for _, t in calls)
    done = [0] + [d for d, _ in calls]
    gaps = [b - a for a, b in zip(done, done[1:], strict=False)]
    # Reported as soon as PROGRESS_EVERY more have finished; at most `concurrency` finish between two looks.
    assert all(0 < gap < ports.PROGRESS_EVERY + concurrency for gap in gaps), gaps


def test_nothing_to_scan_still_reports_the_end():
    calls: list[tuple[int, int]] = []
    assert scan_sync(["127.0.0.1"], [], progress=lambda d, t: calls.append((d, t))) == {"127.0.0.1": []}
    assert calls == [(0, 0)]


class Stop(Exception):
    pass


def test_an_exception_from_progress_stops_the_scan_and_closes_every_socket(lab):
    holes = [lab.black_hole() for _ in range(20)]  # connects in flight when progress raises
    before = _fd_count()
    threads_before = threading.active_count()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        raise Stop("cancelled")

    with pytest.raises(Stop):
        scan_sync(
            ["127.0.0.1"],
            [*holes, *range(30000, 33000)],
            timeout=30,
            progress=progress,
            rate_per_host=0,
            rate_global=0,
        )
    assert len(calls) == 1 and calls[0] < 3000 + len(holes)
    assert _fd_count() == before
    assert threading.active_count() == threads_before


def test_cancelling_the_task_closes_every_socket(lab):
    holes = [lab.black_hole() for _ in range(20)]
    before = _fd_count()

    async def cancel_while_connecting() -> None:
        base = _fd_count()  # the event loop's own descriptors included
        task = asyncio.ensure_future(scan(["127.0.0.1"], holes, timeout=30, retries=0, rate_per_host=0, rate_global=0))
        while _fd_count() < base + len(holes):  # wait until every black hole has a connect pending
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_connecting())
    assert _fd_count() == before


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# Slack over rate x window: the bucket's burst (1 at these rates) plus probes handed to threads before they run.
_SLACK = 1 + ports._BATCHES_QUEUED + 2


def test_per_host_rate_limit(attempts):
    hosts, rate = ["127.0.0.1", "127.0.0.2"], 100
    wanted = list(range(40000, 40120))
    scan_sync(hosts, wanted, rate_per_host=rate, rate_global=0, timeout=2, retries=0)
    for host in hosts:
        times = [t for h, _, t in attempts if h == host]
        assert len(times) == len(wanted)
        assert _max_in_window(times, 0.5) <= rate * 0.5 + _SLACK


def test_global_rate_limit(attempts):
    hosts, rate = ["127.0.0.1", "127.0.0.2"], 150
    wanted = list(range(40000, 40075))
    scan_sync(hosts, wanted, rate_global=rate, rate_per_host=0, timeout=2, retries=0)
    assert len(attempts) == len(hosts) * len(wanted)
    assert sorted({h for h, _, _ in attempts}) == hosts
    assert _max_in_window([t for _, _, t in attempts], 0.5) <= rate * 0.5 + _SLACK


def test_token_bucket_arithmetic():
    bucket = ports._TokenBucket(100, now=0.0)
    assert bucket.available(0.0) == 1
    bucket.tokens -= 1
    assert bucket.available(0.005) == 0
    assert bucket.ready_at() == pytest.approx(0.01)
    assert bucket.available(10.0) == 1  # idle time does not pile up into a burst
    big = ports._TokenBucket(10_000, now=0.0)
    assert big.available(0.0) == 100  # 10 ms worth


def test_a_self_connect_is_not_an_open_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.connect(sock.getsockname())  # TCP simultaneous open with itself
        assert ports._outcome(sock, 0)[0] == ports._SELF


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="not an IPv4 or IPv6 address"):
        scan_sync(["localhost"], [80])
    with pytest.raises(ValueError, match="not a port number"):
        scan_sync(["127.0.0.1"], [0])
    with pytest.raises(ValueError, match="concurrency"):
        scan_sync(["127.0.0.1"], [80], concurrency=0)


def test_an_unsupported_address_family_is_a_scan_error(monkeypatch):
    def no_sockets(family: int, address: tuple) -> tuple[int, object]:
        return ports._FAILED, OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))

    monkeypatch.setattr(ports, "_start_probe", no_sockets)
    with pytest.raises(PortScanError, match="cannot probe 127.0.0.1 port 80"):
        scan_sync(["127.0.0.1"], [80, 81], rate_per_host=0, rate_global=0)


_STARVED = """
import json, logging, os, resource, socket, sys
sys.path.insert(0, sys.argv[1])
logging.basicConfig(level=logging.WARNING)
import asyncio
from app.scanners.ports import scan

keep = []
def listener(backlog):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(backlog); keep.append(s); return s.getsockname()[1]
holes = []
for _ in range(30):  # connects to these stay pending, each holding a descriptor
    port = listener(0); keep.append(socket.create_connection(("127.0.0.1", port))); holes.append(port)
open_ports = [listener(16) for _ in range(3)]
used = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 12, used + 12))  # room for about 8 sockets
found = asyncio.run(scan(["127.0.0.1"], holes[:15] + open_ports + holes[15:], concurrency=200, timeout=0.3,
                         retries=0, rate_per_host=0, rate_global=0))
print(json.dumps({"found": found["127.0.0.1"], "open": sorted(open_ports)}))
"""


def test_running_out_of_file_descriptors_backs_off_and_loses_nothing():
    done = subprocess.run(
        [sys.executable, "-c", _STARVED, str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["found"] == result["open"]
    assert "Too many open files; backing off" in done.stderr


_LOW_LIMIT = """
import resource, sys
sys.path.insert(0, sys.argv[1])
import asyncio
from app.scanners.ports import scan
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
asyncio.run(scan(["127.0.0.1"], [1], concurrency=2000, timeout=1, retries=0, rate_per_host=0, rate_global=0))
print(resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard) or hard <= 256)
"""


def test_a_low_open_files_limit_is_raised_to_the_hard_limit():
    done = subprocess.run(
        [sys.executable, "-c", _LOW_LIMIT, str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
