"""TCP connect port scanning (`scan`); the port lists it takes are read by app/scanners/portspec.py.

A probe is create, connect, close: no socket outlives its port's answer, so file descriptors and memory
are bounded by `concurrency` (plus one list of open ports per host), not by the number of ports.

How the work is split, and why (measured on 2 CPUs, full 1-65535 scan of 127.0.0.1):
- On loopback and fast networks the kernel answers before connect() even returns, so the syscalls
  themselves (socket, connect, close: ~15 us of kernel time each probe) are the whole cost. Batches of
  non-blocking connects are started from a few threads: the GIL is released inside every syscall, so
  that kernel work runs on several CPUs at once (0.7 s, against 1.15 s from the event loop's thread).
- A connect still in progress after its first syscalls is handed to the asyncio event loop, which waits
  for writability with a timeout: thousands in flight cost one registration and one timer each, and no
  coroutine. (A coroutine per probe awaiting `loop.sock_connect` took 5.5 s; `asyncio.open_connection`
  10 s.)
- The scan's own coroutine only dispatches: it hands out batches within the concurrency bound and the
  rate limits, collects answers, retries timeouts, and calls `progress` - so an exception raised there
  (a cancelled job) leaves through a single `finally` that closes every socket.

Outcomes: a completed handshake is open (the socket is then reset, not closed politely, so nothing
lingers in TIME_WAIT); refused, reset or unreachable is not open; no answer within `timeout` is retried
`retries` times. Running out of file descriptors or buffers is neither: the probe goes back in the
queue, the scan backs off and lowers its concurrency, and gives up with `PortScanError` only after
`GIVE_UP_SECONDS` without one successful start. A connect that meets itself (Linux may pick the target
port as the source port when scanning its own ephemeral range) is tried again, not reported open.

Sockets need a selector event loop (the default on Linux and macOS). A scan raises the process's soft
open-files limit to the hard limit when it is below `concurrency`, and holds up to `concurrency`
descriptors: code in the same process that still uses select() breaks on descriptors above 1023.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import resource
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from app.errors import PortScanError
from app.scanners.portspec import MAX_PORT
from app.settings import get_settings

log = logging.getLogger(__name__)

PROGRESS_EVERY = 500  # finished probes between progress() calls
GIVE_UP_SECONDS = 60.0  # of nothing but "too many open files" (or similar) before PortScanError

Progress = Callable[[int, int], object]

# Tuning (see the module docstring and bench/ports_bench.py). Threads beyond the CPUs we may run on only
# add GIL handoffs; batches of a few hundred amortise the handoff to a thread without delaying answers.
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_THREADS = min(4, _CPUS)
_BATCH = 256
_MIN_BATCH = 32  # while threads are busy, wait for this much room rather than hand out tiny batches
_BATCHES_QUEUED = 2 * _THREADS  # enough that no thread waits for the dispatcher
_FD_RESERVE = 64  # descriptors left to the rest of the process when concurrency is sized to the limit
_MIN_CONCURRENCY = 32  # floor when running out of descriptors lowers concurrency
_MAX_BACKOFF = 1.0

_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)  # Linux: non-blocking from socket(), one syscall fewer
_SOCK_TYPE = socket.SOCK_STREAM | _NONBLOCK
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, skipping TIME_WAIT

# Probe outcomes, as passed from the submit threads to the event loop.
_OPEN, _CLOSED, _TIMEOUT, _PENDING, _SELF, _RESOURCE, _FAILED = range(7)

_NOT_OPEN = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENETDOWN,
        errno.EACCES,  # a local firewall rule rejected it
        errno.EPERM,
    }
)
# Out of descriptors, buffers or ephemeral ports: says nothing about the port; wait and try again.
_RESOURCE_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN, errno.EADDRNOTAVAIL}
)


# ------------------------------------------------------------------------------------------- one probe


class _Target:
    """One host: where its next fresh port is, probes to try again, and what was found open."""

    __slots__ = ("host", "family", "ip", "scope_id", "next_index", "again", "open", "bucket", "queued")

    def __init__(self, host: str, family: int, ip: str, scope_id: int) -> None:
        self.host, self.family, self.ip, self.scope_id = host, family, ip, scope_id
        self.next_index = 0
        self.again: deque[tuple[int, int]] = deque()  # (port, attempt) to probe again before fresh ports
        self.open: list[int] = []
        self.bucket: _TokenBucket | None = None
        self.queued = True  # in the dispatcher's round robin

    def address(self, port: int) -> tuple:
        return (self.ip, port) if self.family == socket.AF_INET else (self.ip, port, 0, self.scope_id)


_Probe = tuple[_Target, int, int]  # target, port, attempt (0 for the first try)


def _target(host: str) -> _Target:
    try:
        ipaddress.ip_address(host)
        family, _, _, _, sockaddr = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0]
    except (ValueError, socket.gaierror):
        raise ValueError(f"{host!r} is not an IPv4 or IPv6 address (resolve names before scanning)") from None
    return _Target(host, family, sockaddr[0], sockaddr[3] if family == socket.AF_INET6 else 0)


def _start_probe(family: int, address: tuple) -> tuple[int, object]:
    """Start one connect and return (outcome, payload); the payload of `_PENDING` is the open socket.

    Runs in a submit thread and never blocks: the socket is non-blocking, and on loopback the answer
    is usually in before connect() returns, so most probes end here.
    """
    try:
        sock = socket.socket(family, _SOCK_TYPE)
    except OSError as exc:
        return (_RESOURCE, exc) if exc.errno in _RESOURCE_ERRORS else (_FAILED, exc)
    handed_over = False
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        err = sock.connect_ex(address)
        if err == errno.EINPROGRESS:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0 and not _connected(sock):
                handed_over = True
                return _PENDING, sock
        return _outcome(sock, err)
    finally:
        if not handed_over:
            sock.close()


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _outcome(sock: socket.socket, err: int) -> tuple[int, object]:
    """Classify a finished connect (`err` from connect or SO_ERROR); the caller closes the socket."""
    if err == 0:
        try:
            if sock.getsockname() == sock.getpeername():
                return _SELF, None
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        except OSError:
            pass  # reset straight after the handshake: the port still answered
        return _OPEN, None
    if err in _NOT_OPEN:
        return _CLOSED, None
    if err == errno.ETIMEDOUT:
        return _TIMEOUT, None
    exc = OSError(err, os.strerror(err))
    return (_RESOURCE, exc) if err in _RESOURCE_ERRORS else (_FAILED, exc)


def _run_batch(batch: list[_Probe]) -> list[tuple[int, object]]:
    """Start a batch of probes (in a submit thread); stops at the first error that is not about a port."""
    results: list[tuple[int, object]] = []
    for target, port, _ in batch:
        try:
            result = _start_probe(target.family, target.address(port))
        except Exception as exc:  # a bug or an odd address: report it, never leave sockets behind
            result = (_FAILED, exc)
        results.append(result)
        if result[0] in (_RESOURCE, _FAILED):
            break
    return results


# ------------------------------------------------------------------------------------------- the scan


class _TokenBucket:
    """`rate` attempts a second; bursts of at most 10 ms worth (at least one attempt)."""

    def __init__(self, rate: int, now: float) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate / 100)
        self.tokens = self.capacity
        self.stamp = now

    def available(self, now: float) -> int:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return int(self.tokens)

    def ready_at(self) -> float:
        """When the next whole token will be there (call after `available`)."""
        return self.stamp + (1.0 - self.tokens) / self.rate


class _Pending:
    __slots__ = ("sock", "probe", "timer")

    def __init__(self, sock: socket.socket, probe: _Probe) -> None:
        self.sock: socket.socket | None = sock
        self.probe = probe
        self.timer: asyncio.TimerHandle | None = None


class _Scan:
    def __init__(
        self,
        targets: list[_Target],
        ports: list[int],
        *,
        concurrency: int,
        timeout: float,
        retries: int,
        rate_per_host: int,
        rate_global: int,
        progress: Progress | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.ports = ports
        self.timeout, self.retries, self.progress = timeout, retries, progress
        self.cap = concurrency  # lowered when descriptors run out
        now = self.loop.time()
        for target in targets:
            target.bucket = _TokenBucket(rate_per_host, now) if rate_per_host else None
        self.bucket = _TokenBucket(rate_global, now) if rate_global else None
        self.round_robin = deque(t for t in targets if ports)
        self.total = len(targets) * len(ports)
        self.done = self.reported = 0
        self.in_flight = 0  # handed to a thread, or waiting on the loop
        self.batches: dict[Future, list[_Probe]] = {}
        self.pending: set[_Pending] = set()
        self.resume_at = 0.0
        self.backoff = 0.0
        self.starved_since: float | None = None
        self.error: BaseException | None = None
        self.wake: asyncio.Future[None] | None = None
        self.closed = False
        self.executor = ThreadPoolExecutor(_THREADS, thread_name_prefix="assetmon-ports")

    async def run(self) -> None:
        try:
            while self.done < self.total:
                if self.error is not None:
                    raise self.error
                if self.progress is not None and self.done - self.reported >= PROGRESS_EVERY:
                    self.reported = self.done
                    self.progress(self.done, self.total)
                await self._sleep(self._dispatch())
            if self.error is not None:
                raise self.error
            if self.progress is not None:
                self.progress(self.total, self.total)
        finally:
            self._close()

    # dispatching (the scan's coroutine) ------------------------------------------------------------

    def _dispatch(self) -> float | None:
        """Hand out batches while allowed; return when to look again if only time can unblock it."""
        now = self.loop.time()
        if now < self.resume_at:
            return self.resume_at
        while self.round_robin and len(self.batches) < _BATCHES_QUEUED:
            room = min(self.cap - self.in_flight, _BATCH)
            if room <= 0 or (room < _MIN_BATCH and self.batches):
                return None  # an answer, a timeout or a finished batch will wake us
            batch, ready_at = self._take(room, now)
            if not batch:
                return ready_at
            future = self.executor.submit(_run_batch, batch)
            self.batches[future] = batch
            self.in_flight += len(batch)
            future.add_done_callback(self._from_thread)
        return None

    def _take(self, room: int, now: float) -> tuple[list[_Probe], float | None]:
        """Up to `room` probes, taken round robin from the hosts in chunks, within the rate limits."""
        batch: list[_Probe] = []
        ready_at: float | None = None
        chunk = max(1, room // len(self.round_robin))  # spread each batch over the hosts
        blocked = 0  # hosts in a row that their own rate limit holds back
        while room > 0 and self.round_robin and blocked < len(self.round_robin):
            target = self.round_robin[0]
            want = min(room, chunk, len(target.again) + len(self.ports) - target.next_index)
            if self.bucket is not None:
                want = min(want, self.bucket.available(now))
                if want == 0:
                    return batch, self.bucket.ready_at()  # nobody may go before the global limit allows
            if target.bucket is not None:
                want = min(want, target.bucket.available(now))
                if want == 0:
                    ready_at = min(ready_at or float("inf"), target.bucket.ready_at())
                    self.round_robin.rotate(-1)
                    blocked += 1
                    continue
                target.bucket.tokens -= want
            if self.bucket is not None:
                self.bucket.tokens -= want
            blocked = 0
            room -= want
            while want and target.again:
                port, attempt = target.again.popleft()
                batch.append((target, port, attempt))
                want -= 1
            if want:
                start = target.next_index
                target.next_index = start + want
                batch.extend((target, port, 0) for port in self.ports[start : start + want])
            if target.again or target.next_index < len(self.ports):
                self.round_robin.rotate(-1)
            else:
                self.round_robin.popleft()
                target.queued = False
        return batch, ready_at

    async def _sleep(self, until: float | None) -> None:
        self.wake = self.loop.create_future()
        timer = self.loop.call_at(until, self._poke) if until is not None else None
        try:
            await self.wake
        finally:
            self.wake = None
            if timer is not None:
                timer.cancel()

    def _poke(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    # answers (event loop callbacks) ------------------------------------------------------------------

    def _from_thread(self, future: Future) -> None:
        self.loop.call_soon_threadsafe(self._batch_done, future)

    def _batch_done(self, future: Future) -> None:
        batch = self.batches.pop(future, None)
        if batch is None:  # the scan is over; _close dealt with this batch
            return
        try:
            results: list[tuple[int, object]] = future.result()
        except Exception as exc:  # _run_batch reports errors as results; this is a bug, but must not hang the scan
            self.error = self.error or PortScanError(f"port scan thread failed: {exc!r}")
            self._poke()
            return
        starved = None
        for probe, (outcome, payload) in zip(batch, results, strict=False):
            if outcome == _PENDING:
                self._watch(payload, probe)  # type: ignore[arg-type]
            else:
                self._settle(probe, outcome, payload)
                if outcome == _RESOURCE:
                    starved = payload
        for probe in batch[len(results) :]:  # never started: an error stopped the batch
            self._again(probe, probe[2])
        if starved is not None:
            self._starved(starved)  # type: ignore[arg-type]
        elif results:
            self.backoff, self.starved_since = 0.0, None
        self._poke()

    def _watch(self, sock: socket.socket, probe: _Probe) -> None:
        if self.closed:
            sock.close()
            return
        pending = _Pending(sock, probe)
        self.pending.add(pending)
        self.loop.add_writer(sock.fileno(), self._writable, pending)
        pending.timer = self.loop.call_later(self.timeout, self._timed_out, pending)

    def _writable(self, pending: _Pending) -> None:
        sock = pending.sock
        if sock is None:
            return
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0 and not _connected(sock):
                return  # not an answer yet (the loop reports writability only on one, but be sure)
            outcome, payload = _outcome(sock, err)
        except OSError as exc:
            outcome, payload = _FAILED, exc
        self._release(pending)
        self._settle(pending.probe, outcome, payload)
        if outcome == _RESOURCE:
            self._starved(payload)  # type: ignore[arg-type]
        self._poke()

    def _timed_out(self, pending: _Pending) -> None:
        if pending.sock is None:
            return
        self._release(pending)
        self._settle(pending.probe, _TIMEOUT, None)
        self._poke()

    def _release(self, pending: _Pending) -> None:
        sock, pending.sock = pending.sock, None
        if sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        if pending.timer is not None:
            pending.timer.cancel()
        sock.close()
        self.pending.discard(pending)

    def _settle(self, probe: _Probe, outcome: int, payload: object) -> None:
        target, port, attempt = probe
        if outcome == _OPEN:
            target.open.append(port)
        elif outcome == _TIMEOUT and attempt < self.retries:
            self._again(probe, attempt + 1)
            return
        elif outcome in (_SELF, _RESOURCE):
            self._again(probe, attempt)  # says nothing about the port
            return
        elif outcome == _FAILED and self.error is None:
            self.error = PortScanError(f"cannot probe {target.host} port {port}: {payload}")
        self.in_flight -= 1
        self.done += 1

    def _again(self, probe: _Probe, attempt: int) -> None:
        target, port, _ = probe
        self.in_flight -= 1
        target.again.append((port, attempt))
        if not target.queued:
            target.queued = True
            self.round_robin.append(target)

    def _starved(self, exc: OSError) -> None:
        """Out of descriptors or buffers: pause, hold fewer connections, give up if it never ends."""
        now = self.loop.time()
        if self.starved_since is None:
            self.starved_since = now
            self.cap = min(self.cap, max(_MIN_CONCURRENCY, len(self.pending) * 3 // 4))
            log.warning("port scan: %s; backing off, at most %d connections in flight", exc.strerror, self.cap)
        elif now - self.starved_since > GIVE_UP_SECONDS and self.error is None:
            self.error = PortScanError(
                f"no sockets for {GIVE_UP_SECONDS:.0f} s ({exc.strerror}); "
                "raise the open-files limit (ulimit -n) or lower PORT_CONCURRENCY"
            )
        self.backoff = min(_MAX_BACKOFF, max(0.005, self.backoff * 2))
        self.resume_at = now + self.backoff

    def _close(self) -> None:
        """Close every socket of the scan, whichever way it ends (done, error, progress raising, cancel)."""
        self.closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)  # batches are short: syscalls that never block
        for future in self.batches:
            if future.done() and not future.cancelled() and future.exception() is None:
                for outcome, payload in future.result():
                    if outcome == _PENDING:
                        payload.close()  # type: ignore[attr-defined]
        self.batches.clear()
        for pending in list(self.pending):
            self._release(pending)


def _raise_fd_limit(wanted: int) -> int:
    """Lift the soft open-files limit to the hard one when it is short of `wanted`; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass  # not allowed here: work within the soft limit
    return soft


def _unique_ports(ports: Iterable[int]) -> list[int]:
    unique = list(dict.fromkeys(ports))
    for port in unique:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= MAX_PORT:
            raise ValueError(f"not a port number: {port!r} (ports go from 1 to {MAX_PORT})")
    return unique


async def scan(
    hosts: list[str],
    ports: list[int],
    *,
    concurrency: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    rate_per_host: int | None = None,
    rate_global: int | None = None,
    progress: Progress | None = None,
) -> dict[str, list[int]]:
    """TCP connect scan: each host (an IPv4 or IPv6 address, as given) -> its open ports, sorted.

    Ports are probed in the order given (pass `top_ports(n)` to try the likeliest first), interleaved
    across hosts. None means the setting: PORT_CONCURRENCY (connections in flight, all hosts),
    PORT_TIMEOUT_SECONDS (per attempt), PORT_RETRIES (extra attempts after a timeout), PORT_RATE_PER_HOST
    and PORT_RATE_GLOBAL (connection attempts a second; 0: no cap). `progress(done, total)` is called
    every `PROGRESS_EVERY` finished probes and at the end; whatever it raises stops the scan, closes
    every socket and propagates. Raises ValueError for a bad host or port, PortScanError when the scan
    cannot go on (see the module docstring).
    """
    if None in (concurrency, timeout, retries, rate_per_host, rate_global):
        settings = get_settings()
        concurrency = settings.port_concurrency if concurrency is None else concurrency
        timeout = settings.port_timeout_seconds if timeout is None else timeout
        retries = settings.port_retries if retries is None else retries
        rate_per_host = settings.port_rate_per_host if rate_per_host is None else rate_per_host
        rate_global = settings.port_rate_global if rate_global is None else rate_global
    if concurrency < 1 or timeout <= 0 or retries < 0 or rate_per_host < 0 or rate_global < 0:
        raise ValueError("concurrency must be >= 1, timeout > 0, retries and rates >= 0")
    targets = [_target(host) for host in dict.fromkeys(hosts)]
    port_list = _unique_ports(ports)

    limit = _raise_fd_limit(concurrency + _FD_RESERVE)
    if concurrency + _FD_RESERVE > limit:
        concurrency = max(1, limit - _FD_RESERVE if limit > 2 * _FD_RESERVE else limit // 2)
        log.info("port scan: open-files limit is %d; at most %d connections in flight", limit, concurrency)

    run = _Scan(
        targets,
        port_list,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        rate_per_host=rate_per_host,
        rate_global=rate_global,
        progress=progress,
    )
    await run.run()
    return {target.host: sorted(target.open) for target in targets}
