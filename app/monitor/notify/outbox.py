"""The notification outbox: events become Delivery rows, a periodic tick sends the due ones.

pending ──claim──▶ sending ──2xx──▶ sent
   ▲                  │
   └──retry (backoff)─┤ error, attempts < NOTIFY_MAX_ATTEMPTS
                      └──────────▶ failed (attempts used up)

Every state change is a conditional UPDATE, so two processes ticking at once never send the same
delivery twice; every attempt is logged as a DeliveryAttempt. A delivery left in `sending` by a
process that died is put back after stuck_after(NOTIFY_TIMEOUT_SECONDS). One `deliver_due` call is bounded: at most
`limit` deliveries, and nothing new starts once the first NOTIFY_TIMEOUT_SECONDS have passed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.db import session_scope
from app.models import Channel, Delivery, DeliveryAttempt, Event, iso, utcnow
from app.monitor.notify import channels, senders
from app.monitor.notify.channels import ChannelError
from app.monitor.notify.messages import TEST_SUMMARY, TEST_TYPE, event_document, one_line
from app.settings import get_settings

log = logging.getLogger(__name__)

STATUSES = ("pending", "sending", "sent", "failed")


def stuck_after(timeout: float) -> float:
    """Seconds after which a delivery still `sending` belongs to a dead process. A live one cannot take
    this long: no send starts after `timeout`, and each send is cut off at 2 x `timeout` (see _send_all)."""
    return 4 * timeout + 30


MAX_LIMIT = 500
CONCURRENCY = 16  # sends in flight per call
PER_CHANNEL = 2  # sends in flight per channel (chat services rate-limit bursts)
MAX_RETRY_AFTER = 3600.0
_CHUNK = 500


# --- queueing -----------------------------------------------------------------------------------------------


def enqueue(event_ids: list[int]) -> int:
    """Queue each event for every enabled channel whose filters match; returns the rows added.

    Idempotent: an event already queued for a channel is not queued again (unique channel+event)."""
    ids = sorted({int(i) for i in event_ids})
    if not ids:
        return 0
    added = 0
    with session_scope() as session:
        enabled = list(session.exec(select(Channel).where(col(Channel.enabled).is_(True))).all())
        if not enabled:
            return 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            events = session.exec(select(Event).where(col(Event.id).in_(chunk))).all()
            existing = set(
                session.exec(
                    select(Delivery.channel_id, Delivery.event_id).where(col(Delivery.event_id).in_(chunk))
                ).all()
            )
            now = utcnow()
            for event in events:
                for channel in enabled:
                    if (channel.id, event.id) in existing or not channels.matches(channel, event.type, event.severity):
                        continue
                    added += _insert_ignore(session, channel.id, event.id, now)
    return added


def _insert_ignore(session, channel_id: int, event_id: int, now: datetime) -> int:
    row = {
        "channel_id": channel_id,
        "event_id": event_id,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        dialect_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
        # RETURNING counts the row actually inserted (psycopg reports no rowcount for an INSERT here).
        statement = dialect_insert(Delivery).values(**row).on_conflict_do_nothing().returning(Delivery.id)
        return len(session.exec(statement).all())
    try:
        with session.begin_nested():
            session.exec(insert(Delivery).values(**row))
        return 1
    except IntegrityError:
        return 0


def send_test(channel_id: int) -> Delivery:
    """Queue a test message ("AssetMon test notification") for one channel, whatever its filters."""
    channels.get(channel_id)
    with session_scope() as session:
        delivery = Delivery(channel_id=channel_id, event_id=None)
        session.add(delivery)
        session.flush()
        session.refresh(delivery)
        return delivery


# --- sending ------------------------------------------------------------------------------------------------


def deliver_due(limit: int = 50, now: datetime | None = None) -> dict[str, int]:
    """Send what is due (oldest first, at most `limit`); counts of what happened.

    Synchronous and self-contained (it runs its own event loop): call it from a thread, e.g.
    `await run_in_threadpool(outbox.deliver_due)` in async code."""
    now = now or utcnow()
    counts = _new_counts()
    counts["recovered"] = _recover_stuck(now)
    limit = max(1, min(int(limit), MAX_LIMIT))
    query = (
        select(Delivery.id)
        .where(col(Delivery.status) == "pending", _due(now))
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
    )
    with session_scope() as session:
        ids = list(session.exec(query).all())
    return _deliver(ids, now, counts)


def deliver(delivery_ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Send these deliveries now if they are pending and due (e.g. a test message just queued)."""
    now = now or utcnow()
    return _deliver(list(delivery_ids)[:MAX_LIMIT], now, _new_counts())


def _due(now: datetime):
    return or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now)


def _new_counts() -> dict[str, int]:
    return {"recovered": 0, "claimed": 0, "sent": 0, "retrying": 0, "failed": 0, "deferred": 0}


def _deliver(ids: list[int], now: datetime, counts: dict[str, int]) -> dict[str, int]:
    batch = _claim(ids, now)
    counts["claimed"] = len(batch)
    if not batch:
        return counts
    settings = get_settings()
    outcomes = _run(_send_all(batch, settings.notify_timeout_seconds, settings.http_user_agent))
    for (delivery, channel, _event), outcome in zip(batch, outcomes, strict=True):
        if outcome is None:
            _release(delivery)
            counts["deferred"] += 1
        else:
            counts[_record(delivery, channel, outcome, now, settings)] += 1
    return counts


def _claim(ids: list[int], now: datetime) -> list[tuple[Delivery, Channel, Event | None]]:
    """pending → sending, one conditional UPDATE per row: only one process can win each delivery."""
    won: list[int] = []
    with session_scope() as session:
        for delivery_id in ids:
            result = session.exec(
                update(Delivery)
                .where(
                    col(Delivery.id) == delivery_id,
                    col(Delivery.status) == "pending",
                    _due(now),
                )
                .values(status="sending", attempts=col(Delivery.attempts) + 1, updated_at=now)
            )
            if result.rowcount == 1:
                won.append(delivery_id)
    if not won:
        return []
    with session_scope() as session:
        deliveries = session.exec(select(Delivery).where(col(Delivery.id).in_(won))).all()
        by_channel = {c.id: c for c in session.exec(select(Channel).where(col(Channel.id).in_(_ids(deliveries))))}
        event_ids = [d.event_id for d in deliveries if d.event_id is not None]
        by_event = {e.id: e for e in session.exec(select(Event).where(col(Event.id).in_(event_ids)))}
    batch = []
    for delivery in sorted(deliveries, key=lambda d: d.id or 0):
        channel = by_channel.get(delivery.channel_id)
        if channel is not None:  # deleted meanwhile: its deliveries went with it
            batch.append((delivery, channel, by_event.get(delivery.event_id) if delivery.event_id else None))
    return batch


def _ids(deliveries) -> list[int]:
    return sorted({d.channel_id for d in deliveries})


def _run(coro):
    """Run a coroutine to completion from synchronous code, even in a thread that has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _send_all(
    batch: list[tuple[Delivery, Channel, Event | None]], timeout: float, user_agent: str
) -> list[senders.Outcome | None]:
    """Every send concurrently (bounded in total and per channel); None for those deferred to the next tick."""
    total = asyncio.Semaphore(CONCURRENCY)
    per_channel: dict[int, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(PER_CHANNEL))
    start_by = time.monotonic() + timeout
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        timeout=timeout, trust_env=False, follow_redirects=False, limits=limits, headers={"User-Agent": user_agent}
    ) as client:

        async def one(delivery: Delivery, channel: Channel, event: Event | None) -> senders.Outcome | None:
            async with per_channel[channel.id], total:
                if time.monotonic() > start_by:
                    return None
                if not channel.enabled and event is not None:
                    return senders.Outcome(False, error="the channel is disabled")
                try:  # httpx's timeout is per read: a dripping server is cut off here, as a whole
                    async with asyncio.timeout(2 * timeout):
                        return await senders.send(channel, event_document(event), delivery.id, client, timeout)
                except TimeoutError:
                    return senders.Outcome(False, error=f"no complete answer within {2 * timeout:g} s")

        return await asyncio.gather(*(one(*item) for item in batch))


def _record(delivery: Delivery, channel: Channel, outcome: senders.Outcome, now: datetime, settings) -> str:
    """Log the attempt and move the delivery on: sent, pending again (with backoff) or failed."""
    attempt = delivery.attempts  # read back after the claim, which counted this attempt
    values: dict[str, Any] = {
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "updated_at": now,
    }
    if outcome.ok:
        state = "sent"
        values.update(status="sent", next_attempt_at=None)
    elif attempt >= settings.notify_max_attempts or (not channel.enabled and delivery.event_id is not None):
        state = "failed"
        values.update(status="failed", next_attempt_at=None)
    else:
        state = "retrying"
        delay = settings.notify_backoff_seconds * 2 ** (attempt - 1)
        if outcome.retry_after:
            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
        values.update(status="pending", next_attempt_at=now + timedelta(seconds=delay))
    try:
        with session_scope() as session:
            if not _settle(session, delivery.id, attempt, values):
                return "deferred"  # deleted, or taken back as stuck meanwhile: not ours any more
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    attempt=attempt,
                    ok=outcome.ok,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    seconds=outcome.seconds,
                    created_at=now,
                )
            )
    except IntegrityError:  # the channel (and so the delivery) was deleted while it was being sent
        return "deferred"
    if state != "sent":
        log.info("delivery %s to %s channel %s: %s (%s)", delivery.id, channel.kind, channel.id, state, outcome.error)
    return state


def _settle(session: Session, delivery_id: int | None, attempt: int, values: dict[str, Any]) -> bool:
    """Move a delivery on from `sending`, only while it is still the claim that was made (`sending`, this
    attempt): a process that lost it (taken back as stuck, deleted) changes nothing."""
    result = session.exec(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.status) == "sending", col(Delivery.attempts) == attempt)
        .values(**values)
    )
    return result.rowcount == 1


def _release(delivery: Delivery) -> None:
    """Not started within this call's budget: back to pending, the claim's attempt not counted."""
    with session_scope() as session:
        _settle(session, delivery.id, delivery.attempts, {"status": "pending", "attempts": delivery.attempts - 1})


def _recover_stuck(now: datetime) -> int:
    """Deliveries left in `sending` by a process that died: log the lost attempt, then retry or fail."""
    cutoff = now - timedelta(seconds=stuck_after(get_settings().notify_timeout_seconds))
    with session_scope() as session:
        stuck = session.exec(
            select(Delivery).where(col(Delivery.status) == "sending", col(Delivery.updated_at) < cutoff)
        ).all()
    if not stuck:
        return 0
    max_attempts = get_settings().notify_max_attempts
    recovered = 0
    for delivery in stuck:
        error = f"the sending process stopped during attempt {delivery.attempts}"
        status = "failed" if delivery.attempts >= max_attempts else "pending"
        values = {
            "status": status,
            "next_attempt_at": now if status == "pending" else None,
            "last_error": error,
            "updated_at": now,
        }
        with session_scope() as session:
            if _settle(session, delivery.id, delivery.attempts, values):
                session.add(
                    DeliveryAttempt(
                        delivery_id=delivery.id, attempt=delivery.attempts, ok=False, error=error, created_at=now
                    )
                )
                recovered += 1
    if recovered:
        log.warning("notifications: %d deliveries stuck in 'sending' were taken back", recovered)
    return recovered


# --- reading ------------------------------------------------------------------------------------------------


def list_deliveries(status: str | None = None, channel_id: int | None = None, limit: int = 50) -> list[Delivery]:
    """Newest first."""
    if status is not None and status not in STATUSES:
        raise ChannelError(f"status: must be one of {', '.join(STATUSES)} (got {status!r})")
    query = select(Delivery).order_by(col(Delivery.id).desc()).limit(max(1, min(limit, MAX_LIMIT)))
    if status:
        query = query.where(Delivery.status == status)
    if channel_id is not None:
        query = query.where(Delivery.channel_id == channel_id)
    with session_scope() as session:
        return list(session.exec(query).all())


def get_delivery(delivery_id: int) -> Delivery | None:
    with session_scope() as session:
        return session.get(Delivery, delivery_id)


def attempts_of(delivery_ids: list[int]) -> dict[int, list[DeliveryAttempt]]:
    if not delivery_ids:
        return {}
    found: dict[int, list[DeliveryAttempt]] = defaultdict(list)
    with session_scope() as session:
        rows = session.exec(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.delivery_id).in_(delivery_ids))
            .order_by(col(DeliveryAttempt.delivery_id), col(DeliveryAttempt.attempt), col(DeliveryAttempt.id))
        ).all()
    for row in rows:
        found[row.delivery_id].append(row)
    return found


def _about(delivery: Delivery, event: Event | None) -> dict[str, Any] | None:
    if delivery.event_id is None:
        return {"type": TEST_TYPE, "severity": "info", "summary": TEST_SUMMARY}
    if event is None:
        return None
    return {"type": event.type, "severity": event.severity, "summary": one_line(event.summary)}


def describe(deliveries: list[Delivery], with_attempts: bool = False) -> list[dict[str, Any]]:
    """Deliveries as JSON: what they carry (event type, severity, summary) and, if asked, every attempt."""
    event_ids = [d.event_id for d in deliveries if d.event_id is not None]
    with session_scope() as session:
        events = {e.id: e for e in session.exec(select(Event).where(col(Event.id).in_(event_ids)))} if event_ids else {}
    log_rows = attempts_of([d.id for d in deliveries]) if with_attempts else {}
    out = []
    for d in deliveries:
        item: dict[str, Any] = {
            "id": d.id,
            "channel_id": d.channel_id,
            "event_id": d.event_id,
            "event": _about(d, events.get(d.event_id) if d.event_id is not None else None),
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
            "last_status_code": d.last_status_code,
            "last_error": d.last_error,
            "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at),
        }
        if with_attempts:
            item["log"] = [
                {
                    "attempt": a.attempt,
                    "ok": a.ok,
                    "status_code": a.status_code,
                    "error": a.error,
                    "seconds": a.seconds,
                    "at": iso(a.created_at),
                }
                for a in log_rows.get(d.id, [])
            ]
        out.append(item)
    return out
