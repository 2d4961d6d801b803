"""Is Redis reachable, and which Celery workers answer? Cached, with short timeouts.

The answer decides the mode: `celery` when Redis answers and a worker consumes the
job's queue, `fallback` otherwise, with a reason a person can read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import redis

from app.jobs.celery_app import celery_app
from app.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerStatus:
    redis_ok: bool
    workers: dict[str, list[str]] = field(default_factory=dict)  # node name -> queues it consumes
    reason: str | None = None  # why the mode is fallback
    checked_at: float = 0.0

    @property
    def mode(self) -> str:
        return "celery" if self.redis_ok and self.workers else "fallback"

    def serves(self, queue: str) -> bool:
        return self.redis_ok and any(queue in queues for queues in self.workers.values())

    def fallback_reason(self, queue: str) -> str:
        if not self.redis_ok:
            return self.reason or "Redis is not reachable"
        if not self.workers:
            return self.reason or "no Celery worker answered"
        return f"no Celery worker consumes the {queue!r} queue; jobs run inside the web process"


_lock = threading.Lock()
_cached: BrokerStatus | None = None
_monitored = False  # True while a StatusMonitor keeps _cached fresh (in the web process)


def redis_client(timeout: float | None = None) -> redis.Redis:
    settings = get_settings()
    t = timeout or settings.broker_probe_timeout
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=t, socket_timeout=t)


def ping_redis() -> bool:
    try:
        client = redis_client()
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def ping_workers(timeout: float | None = None, expect: int | None = None) -> dict[str, list[str]]:
    """Ask every worker which queues it consumes; waits at most `timeout` seconds,
    or only until `expect` workers have answered."""
    settings = get_settings()
    try:
        inspector = celery_app.control.inspect(timeout=timeout or settings.worker_ping_timeout, limit=expect)
        replies = inspector.active_queues()
    except Exception as exc:  # the broker went away mid-call
        log.debug("worker ping failed: %s", exc)
        return {}
    return {node: sorted(q["name"] for q in queues) for node, queues in (replies or {}).items()}


def probe(expect: int | None = None) -> BrokerStatus:
    settings = get_settings()
    url = settings.redacted_redis_url()
    if not ping_redis():
        return BrokerStatus(
            False,
            reason=f"Redis at {url} is not reachable",
            checked_at=time.monotonic(),
        )
    workers = ping_workers(expect=expect)
    reason = None
    if not workers:
        reason = (
            f"Redis at {url} answers but no Celery worker answered a ping within {settings.worker_ping_timeout:g} s"
        )
    return BrokerStatus(True, workers, reason, time.monotonic())


def status(max_age: float | None = None) -> BrokerStatus:
    """The cached status, re-probed when older than `max_age` (default: the cache setting)."""
    global _cached
    age = get_settings().broker_probe_cache_seconds if max_age is None else max_age
    current = _cached
    if current is not None and (_monitored and max_age is None or time.monotonic() - current.checked_at <= age):
        # With a monitor running, callers never wait for a probe: the monitor's answer is at most
        # one probe interval old.
        return current
    with _lock:
        if _cached is None or time.monotonic() - _cached.checked_at > age:
            _cached = probe()
        return _cached


def invalidate() -> None:
    global _cached
    _cached = None


def queue_lengths(queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each Celery queue in Redis (None when Redis is unreachable)."""
    try:
        client = redis_client()
        try:
            return {q: int(client.llen(q)) for q in queues}
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return {q: None for q in queues}


def pending_task_ids(queues: list[str], limit: int = 20000) -> set[str] | None:
    """Job ids of tasks waiting in the given queues or delivered but not yet acknowledged.

    None when Redis cannot be read (then nothing can be concluded).
    """
    ids: set[str] = set()
    try:
        client = redis_client(timeout=2)
        try:
            raw = [m for q in queues for m in client.lrange(q, 0, limit)]
            raw += [v for _, v in client.hscan_iter("unacked", count=1000)]
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return None
    for item in raw:
        try:
            payload = json.loads(item)
            message = payload[0] if isinstance(payload, list) else payload
            ids.add(str(message["headers"]["id"]).split(".")[0])
        except (ValueError, KeyError, TypeError, IndexError):
            continue
    return ids


class StatusMonitor:
    """Keeps the cached status fresh from a background thread, so web requests never wait on a probe."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else max(0.5, get_settings().broker_probe_cache_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        global _monitored
        _monitored = True
        self._thread = threading.Thread(target=self._run, name="broker-status", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        global _cached
        previous: str | None = None
        rounds = 0
        while not self._stop.is_set():
            try:
                # Stop waiting once the workers seen last time have answered; every tenth round
                # waits the full ping timeout to discover new workers.
                known = len(_cached.workers) if _cached is not None and rounds % 10 else 0
                rounds += 1
                fresh = probe(expect=known or None)
                _cached = fresh
                if fresh.mode != previous:
                    log.warning("job mode is now %s%s", fresh.mode, f" ({fresh.reason})" if fresh.reason else "")
                    previous = fresh.mode
            except Exception:
                log.exception("broker status probe failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        global _monitored
        _monitored = False
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
