"""Notifications end to end against local receivers: real HTTP and SMTP servers on 127.0.0.x, a real database.

Time is driven by passing `now=` to deliver_due, so retries and backoff are checked exactly, without sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from app.db import session_scope
from app.models import Delivery, DeliveryAttempt, Event, utcnow
from app.monitor.notify import channels, outbox, senders
from app.monitor.notify.channels import ChannelError
from app.settings import get_settings
from tests.support.processes import WebServer, wait_for
from tests.support.receiver import Receiver, SmtpSink

SECRET = "whsec-test-0123456789abcdef"
SCAN_ID = "1a2b3c4d" + "0" * 24


@pytest.fixture
def notify_env(settings_env, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("NOTIFY_BACKOFF_SECONDS", "2")
    monkeypatch.setenv("NOTIFY_TIMEOUT_SECONDS", "5")
    get_settings.cache_clear()
    return settings_env


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver("127.0.0.2").start()
    yield server
    server.stop()


def add_event(
    type_: str = "port.opened",
    severity: str = "high",
    summary: str = "10.0.0.5:8080 opened on acme",
    data: dict[str, Any] | None = None,
    scan_id: str | None = SCAN_ID,
) -> int:
    with session_scope() as session:
        event = Event(type=type_, severity=severity, summary=summary, data=data or {}, scan_id=scan_id)
        session.add(event)
        session.flush()
        return event.id


def deliveries(channel_id: int | None = None) -> list[Delivery]:
    query = select(Delivery).order_by(col(Delivery.id))
    if channel_id is not None:
        query = query.where(Delivery.channel_id == channel_id)
    with session_scope() as session:
        return list(session.exec(query).all())


def attempts(delivery_id: int) -> list[DeliveryAttempt]:
    with session_scope() as session:
        query = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
        return list(session.exec(query.order_by(col(DeliveryAttempt.attempt))).all())


def aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- what each kind sends -----------------------------------------------------------------------------------


def test_webhook_body_and_hmac_signature(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "webhook", "url": f"{receiver.url}/signed", "events": [], "secret": SECRET})
    channels.create({"kind": "webhook", "url": f"{receiver.url}/plain"})
    event_id = add_event(data={"host": "10.0.0.5", "port": 8080, "token": "tok_abcdefghijklmnopqrstuvwxyz"})

    assert outbox.enqueue([event_id]) == 2
    counts = outbox.deliver_due(now=utcnow())
    assert counts["claimed"] == 2 and counts["sent"] == 2, counts

    [request] = receiver.posts("/signed")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == get_settings().http_user_agent
    assert request.headers["x-assetmon-event"] == "port.opened"
    timestamp = request.headers["x-assetmon-timestamp"]
    assert timestamp.isdigit()
    # The scheme, recomputed here independently: HMAC-SHA256(secret, "<timestamp>.<type>." + raw body).
    expected = hmac.new(SECRET.encode(), f"{timestamp}.port.opened.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-assetmon-signature"] == f"sha256={expected.hexdigest()}"
    assert senders.verify(SECRET, request.headers, request.body)
    assert not senders.verify("another-secret-123", request.headers, request.body)
    assert not senders.verify(SECRET, request.headers, request.body.replace(b"8080", b"8081"))

    event = request.json()["event"]
    assert set(event) == {"id", "target_id", "scan_id", "type", "severity", "summary", "data", "created_at"}
    assert event["id"] == event_id and event["type"] == "port.opened" and event["severity"] == "high"
    assert event["summary"] == "10.0.0.5:8080 opened on acme" and event["scan_id"] == SCAN_ID
    assert datetime.fromisoformat(event["created_at"]).tzinfo is not None
    # A sensitive-looking field is masked even though events should never carry one.
    assert event["data"] == {"host": "10.0.0.5", "port": 8080, "token": "tok_…"}
    assert b"abcdefghijklmnop" not in request.body

    [unsigned] = receiver.posts("/plain")
    assert "x-assetmon-signature" not in unsigned.headers and unsigned.json() == request.json()

    for delivery in deliveries():
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("sent", 1, 200)
        [attempt] = attempts(delivery.id)
        assert attempt.ok and attempt.status_code == 200 and attempt.error is None


def test_chat_bodies(notify_env, receiver: Receiver) -> None:
    slack = channels.create({"kind": "slack", "url": f"{receiver.url}/services/T0/B0/xyz"})
    discord = channels.create({"kind": "discord", "url": f"{receiver.url}/api/webhooks/1/abc"})
    telegram = channels.create({"kind": "telegram", "url": f"{receiver.url}/bot123:ABC/sendMessage?chat_id=-42"})
    outbox.enqueue([add_event()])
    assert outbox.deliver_due(now=utcnow())["sent"] == 3

    line = "[HIGH] port.opened — 10.0.0.5:8080 opened on acme (scan 1a2b3c4d)"
    by_path = {r.path: r.json() for r in receiver.posts()}
    assert by_path["/services/T0/B0/xyz"] == {"text": line}
    assert by_path["/api/webhooks/1/abc"] == {"content": line, "allowed_mentions": {"parse": []}}
    assert by_path["/bot123:ABC/sendMessage?chat_id=-42"] == {
        "text": line,
        "disable_web_page_preview": True,
        "chat_id": "-42",
    }
    assert {d.channel_id for d in deliveries() if d.status == "sent"} == {slack.id, discord.id, telegram.id}


def test_chat_text_from_scanned_content_is_escaped(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "slack", "url": f"{receiver.url}/slack"})
    outbox.enqueue([add_event("service.new", "info", "title <!channel> & co\non www.acme.test", scan_id=None)])
    outbox.deliver_due(now=utcnow())
    [request] = receiver.posts()
    assert request.json() == {"text": "[INFO] service.new — title &lt;!channel&gt; &amp; co on www.acme.test"}


def test_email_over_local_smtp(notify_env) -> None:
    sink = SmtpSink(credentials=("alerts", "smtp-pass-9876")).start()
    try:
        url = (
            f"smtp://alerts:smtp-pass-9876@127.0.0.1:{sink.port}"
            "?from=assetmon@example.test&to=sec@example.test,oncall@example.test"
        )
        channel = channels.create({"kind": "email", "url": url})
        assert "smtp-pass-9876" not in str(channels.to_dict(channel))
        outbox.enqueue([add_event(data={"host": "10.0.0.5"})])
        assert outbox.deliver_due(now=utcnow())["sent"] == 1

        [mail] = sink.mails
        assert mail.login == "alerts"
        assert mail.mail_from == "assetmon@example.test"
        assert mail.rcpt_tos == ["sec@example.test", "oncall@example.test"]
        line = "[HIGH] port.opened — 10.0.0.5:8080 opened on acme (scan 1a2b3c4d)"
        assert mail.message["Subject"] == f"AssetMon: {line}"
        assert mail.message["To"] == "sec@example.test, oncall@example.test"
        text = mail.message.get_content()
        assert line in text and '"host": "10.0.0.5"' in text

        # A wrong password: the SMTP error is recorded, the password is not.
        bad = channels.create({"kind": "email", "url": url.replace("smtp-pass-9876", "wrong-pass-1234")})
        outbox.send_test(bad.id)
        assert outbox.deliver_due(now=utcnow())["retrying"] == 1
        [failed] = [d for d in deliveries(bad.id)]
        assert failed.last_status_code == 535 and "wrong-pass-1234" not in (failed.last_error or "")
        assert len(sink.mails) == 1
    finally:
        sink.stop()


# --- filters ------------------------------------------------------------------------------------------------


def test_filters_by_type_and_min_severity(notify_env, receiver: Receiver) -> None:
    ports_high = channels.create(
        {"kind": "webhook", "url": f"{receiver.url}/a", "events": ["port.opened"], "min_severity": "high"}
    )
    everything = channels.create({"kind": "webhook", "url": f"{receiver.url}/b", "events": ["*"]})
    names = channels.create({"kind": "webhook", "url": f"{receiver.url}/c", "events": ["subdomain.new"]})
    critical = channels.create({"kind": "webhook", "url": f"{receiver.url}/d", "min_severity": "critical"})
    channels.create({"kind": "webhook", "url": f"{receiver.url}/e", "enabled": False})

    high_port = add_event("port.opened", "high")
    low_port = add_event("port.opened", "low")
    new_name = add_event("subdomain.new", "info", "dev.acme.test is new")
    expiring = add_event("cert.expiring", "critical", "www.acme.test expires in 3 days")

    assert outbox.enqueue([high_port, low_port, new_name, expiring]) == 7
    assert outbox.enqueue([high_port, low_port, new_name, expiring]) == 0  # idempotent
    pairs = {(d.channel_id, d.event_id) for d in deliveries()}
    assert pairs == {
        (ports_high.id, high_port),
        (everything.id, high_port),
        (everything.id, low_port),
        (everything.id, new_name),
        (everything.id, expiring),
        (names.id, new_name),
        (critical.id, expiring),
    }
    assert outbox.deliver_due(now=utcnow())["sent"] == 7
    assert sorted(r.path for r in receiver.posts()) == ["/a", "/b", "/b", "/b", "/b", "/c", "/d"]


# --- retries, failures, crashes, races ----------------------------------------------------------------------


def test_server_error_is_retried_with_backoff_then_sent(notify_env, receiver: Receiver) -> None:
    receiver.fail_first(2, status=500)
    channels.create({"kind": "webhook", "url": f"{receiver.url}/hook"})
    outbox.enqueue([add_event()])
    [delivery] = deliveries()
    t0 = utcnow()

    assert outbox.deliver_due(now=t0)["retrying"] == 1
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in delivery.last_error
    assert aware(delivery.next_attempt_at) == t0 + timedelta(seconds=2)  # backoff * 2**0

    assert outbox.deliver_due(now=t0 + timedelta(seconds=1.9))["claimed"] == 0  # not due yet
    t1 = t0 + timedelta(seconds=2)
    assert outbox.deliver_due(now=t1)["retrying"] == 1
    [delivery] = deliveries()
    assert aware(delivery.next_attempt_at) == t1 + timedelta(seconds=4)  # backoff * 2**1

    assert outbox.deliver_due(now=t1 + timedelta(seconds=4))["sent"] == 1
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "sent",
        3,
        200,
        None,
    )
    log = attempts(delivery.id)
    assert [(a.attempt, a.ok, a.status_code) for a in log] == [(1, False, 500), (2, False, 500), (3, True, 200)]
    assert len(receiver.posts()) == 3
    # Every retry of one delivery carries the same delivery id, for receivers that deduplicate.
    assert {r.headers["x-assetmon-delivery"] for r in receiver.posts()} == {str(delivery.id)}


def test_unreachable_receiver_fails_after_max_attempts(notify_env) -> None:
    channel = channels.create({"kind": "webhook", "url": f"http://127.0.0.1:{closed_port()}/hook"})
    outbox.enqueue([add_event()])
    now = utcnow()
    for expected in ("retrying", "retrying", "failed"):
        counts = outbox.deliver_due(now=now)
        assert counts[expected] == 1, counts
        [delivery] = deliveries()
        now = aware(delivery.next_attempt_at) if delivery.next_attempt_at else now

    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    log = attempts(delivery.id)
    assert [a.attempt for a in log] == [1, 2, 3]
    assert all(not a.ok and a.status_code is None and "cannot connect" in a.error for a in log)
    assert outbox.deliver_due(now=now + timedelta(days=1))["claimed"] == 0  # failed is final

    rows = outbox.describe(outbox.list_deliveries(status="failed"), with_attempts=True)
    assert [r["channel_id"] for r in rows] == [channel.id] and len(rows[0]["log"]) == 3


def test_delivery_stuck_in_sending_is_taken_back(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "webhook", "url": f"{receiver.url}/hook"})
    outbox.enqueue([add_event()])
    t0 = utcnow()
    with session_scope() as session:  # what a sender that died mid-attempt leaves behind
        [delivery] = session.exec(select(Delivery)).all()
        delivery.status, delivery.attempts, delivery.updated_at = "sending", 1, t0 - timedelta(seconds=60)
        session.add(delivery)

    # NOTIFY_TIMEOUT_SECONDS=5: a live sender is done within 50 s.
    assert outbox.deliver_due(now=t0 - timedelta(seconds=20))["recovered"] == 0  # 40 s: not yet
    counts = outbox.deliver_due(now=t0)
    assert counts["recovered"] == 1 and counts["sent"] == 1, counts
    [delivery] = deliveries()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert [(a.attempt, a.ok) for a in attempts(delivery.id)] == [(1, False), (2, True)]
    assert len(receiver.posts()) == 1


def _write_lock(data_dir):
    """A connection holding the database's write lock (readers go on) until it rolls back."""
    url = get_settings().db_url
    if url.startswith("postgresql"):
        import psycopg

        conn = psycopg.connect(url.replace("+psycopg", ""))
        conn.execute("LOCK TABLE delivery IN EXCLUSIVE MODE")
        return conn
    conn = sqlite3.connect(data_dir / "assetmon.db")
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_concurrent_ticks_never_send_twice(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "webhook", "url": f"{receiver.url}/hook"})
    event_ids = [add_event(summary=f"port {i} opened") for i in range(40)]
    assert outbox.enqueue(event_ids) == 40
    now = utcnow()
    # Hold the database's write lock so that every tick selects the same 40 due rows and then queues up
    # at its claim; when the lock goes, only the conditional UPDATE decides who sends what. (If a tick
    # were slower to start, it would simply find nothing due: the assertions hold either way.)
    blocker = _write_lock(notify_env)
    barrier = threading.Barrier(4)
    results: list[dict[str, int]] = []

    def tick() -> None:
        barrier.wait()
        results.append(outbox.deliver_due(limit=100, now=now))

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for thread in threads:
        thread.start()
    barrier.wait()
    time.sleep(0.5)
    blocker.rollback()
    blocker.close()
    for thread in threads:
        thread.join(60)

    assert len(results) == 3
    assert sum(r["claimed"] for r in results) == 40 and sum(r["sent"] for r in results) == 40, results
    sent_ids = [r.json()["event"]["id"] for r in receiver.posts()]
    assert sorted(sent_ids) == sorted(event_ids)  # each exactly once
    assert all(d.status == "sent" and d.attempts == 1 for d in deliveries())
    assert all(len(attempts(d.id)) == 1 for d in deliveries())


def test_a_delivery_being_sent_elsewhere_is_left_alone(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "webhook", "url": f"{receiver.url}/hook"})
    outbox.enqueue([add_event()])
    now = utcnow()
    with session_scope() as session:  # another process claimed it a moment ago
        [delivery] = session.exec(select(Delivery)).all()
        delivery.status, delivery.attempts, delivery.updated_at = "sending", 1, now
        session.add(delivery)
    assert outbox.deliver_due(now=now)["claimed"] == 0
    assert outbox.deliver([delivery.id], now=now)["claimed"] == 0
    assert receiver.posts() == [] and attempts(delivery.id) == []


def test_deliver_due_is_bounded_by_limit(notify_env, receiver: Receiver) -> None:
    channels.create({"kind": "webhook", "url": f"{receiver.url}/hook"})
    outbox.enqueue([add_event(summary=f"port {i} opened") for i in range(5)])
    assert outbox.deliver_due(limit=2, now=utcnow())["sent"] == 2
    assert outbox.deliver_due(limit=2, now=utcnow())["sent"] == 2
    assert outbox.deliver_due(limit=2, now=utcnow())["sent"] == 1
    assert len(receiver.posts()) == 5


def test_send_test_and_delete_cascades(notify_env, receiver: Receiver) -> None:
    channel = channels.create({"kind": "discord", "url": f"{receiver.url}/api/webhooks/1/abc", "events": ["js.new"]})
    delivery = outbox.send_test(channel.id)
    assert delivery.event_id is None and delivery.status == "pending"
    assert outbox.deliver([delivery.id])["sent"] == 1
    assert receiver.posts()[0].json()["content"] == "[INFO] test — AssetMon test notification"
    assert outbox.deliver([delivery.id])["claimed"] == 0  # sent is final

    channels.delete(channel.id)
    assert deliveries() == [] and attempts(delivery.id) == []
    with pytest.raises(channels.ChannelNotFound):
        outbox.send_test(channel.id)


# --- validation and redaction -------------------------------------------------------------------------------

GOOD = [
    {"kind": "webhook", "url": "https://hooks.example.com/assetmon", "secret": SECRET},
    {"kind": "webhook", "url": "http://10.1.2.3:9000/in"},
    {"kind": "slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX"},
    {"kind": "discord", "url": "https://discord.com/api/webhooks/123/tok-en"},
    {"kind": "telegram", "url": "https://api.telegram.org/bot123:AAE/sendMessage?chat_id=@my_alerts"},
    {"kind": "email", "url": "smtps://u:p@mail.example.com?from=a@example.com&to=b@example.com"},
    {"kind": "email", "url": "smtp://mail.example.com:587?from=a@example.com&to=b@example.com&starttls=1"},
    {"kind": "slack", "url": "http://127.0.0.9:8080/anything", "events": ["port.opened", "test"]},
]

BAD = [
    ({"kind": "sms", "url": "https://x.example"}, "kind: must be one of"),
    ({"kind": "webhook"}, "url: required"),
    ({"kind": "webhook", "url": "ftp://x.example/in"}, "url: webhook channels need an http"),
    ({"kind": "webhook", "url": "https:///nohost"}, "url: has no host"),
    ({"kind": "slack", "url": "https://example.com/services/T/B/X"}, "url: slack channels need an https://hooks.slack"),
    ({"kind": "slack", "url": "http://hooks.slack.com/services/T/B/X"}, "url: slack channels need an https://"),
    ({"kind": "slack", "url": "https://hooks.slack.com/other"}, "url: slack channels need"),
    ({"kind": "discord", "url": "https://discord.com/channels/1/2"}, "url: discord channels need"),
    ({"kind": "telegram", "url": "https://api.telegram.org/bot1:A/sendMessage"}, "needs ?chat_id="),
    ({"kind": "telegram", "url": "http://127.0.0.1:9/sendMessage?chat_id=1"}, "url: telegram channels need"),
    ({"kind": "email", "url": "mailto:a@example.com"}, "url: email channels need smtp://"),
    ({"kind": "email", "url": "smtp://mail.example.com?to=b@example.com"}, "needs from="),
    ({"kind": "email", "url": "smtp://mail.example.com?from=a@example.com&to=nope"}, "needs to="),
    ({"kind": "email", "url": "smtp://u:p@mail.example.com?from=a@x.io&to=b@x.io"}, "only sent over TLS"),
    ({"kind": "email", "url": "smtp://mail.example.com?from=a@x.io&to=b@x.io&cc=c@x.io"}, "unknown option(s) cc"),
    (
        {"kind": "webhook", "url": "https://x.example/in", "events": ["port.open"]},
        "events: unknown type(s) 'port.open'",
    ),
    ({"kind": "webhook", "url": "https://x.example/in", "events": "port.opened"}, "events: must be a list"),
    ({"kind": "webhook", "url": "https://x.example/in", "min_severity": "urgent"}, "min_severity: must be one of"),
    ({"kind": "webhook", "url": "https://x.example/in", "secret": "short"}, "secret: must be a string of 8"),
    ({"kind": "slack", "url": "https://hooks.slack.com/services/T/B/X", "secret": SECRET}, "only webhook channels"),
    ({"kind": "webhook", "url": "https://x.example/in", "colour": "red"}, "unknown field(s): colour"),
]


@pytest.mark.parametrize("body", GOOD, ids=lambda b: b["url"][:40])
def test_valid_channels(body: dict[str, Any]) -> None:
    values = channels.validate(body)
    assert values["kind"] == body["kind"] and values["url"] == body["url"]


@pytest.mark.parametrize(("body", "message"), BAD, ids=[m for _, m in BAD])
def test_invalid_channels(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ChannelError) as caught:
        channels.validate(body)
    assert message in str(caught.value)
    assert caught.value.status_code == 422


def test_listings_redact_secrets_passwords_and_tokens(notify_env) -> None:
    created = [
        channels.create({"kind": "webhook", "url": "https://h.example/in?token=tk-1234567&team=a", "secret": SECRET}),
        channels.create({"kind": "slack", "url": "https://hooks.slack.com/services/T000/B000/slack-token-1"}),
        channels.create({"kind": "discord", "url": "https://discord.com/api/webhooks/123/discord-token-1"}),
        channels.create(
            {"kind": "telegram", "url": "https://api.telegram.org/bot123:tg-token-1/sendMessage?chat_id=5"}
        ),
        channels.create({"kind": "email", "url": "smtps://me:mail-pass-1@smtp.example.com?from=a@x.io&to=b@x.io"}),
    ]
    listed = [channels.to_dict(c) for c in channels.list_channels()]
    text = str(listed)
    for leak in (SECRET, "tk-1234567", "slack-token-1", "discord-token-1", "tg-token-1", "mail-pass-1"):
        assert leak not in text
    assert [c["id"] for c in listed] == [c.id for c in created]
    assert listed[0]["url"] == "https://h.example/in?token=***&team=a" and listed[0]["signed"] is True
    assert listed[1]["url"] == "https://hooks.slack.com/services/T000/B000/***"
    assert listed[3]["url"] == "https://api.telegram.org/bot***/sendMessage?chat_id=5"
    assert listed[4]["url"] == "smtps://me:***@smtp.example.com?from=a@x.io&to=b@x.io"


# --- the HTTP API on a real server --------------------------------------------------------------------------


def test_api_validation_and_send_test(fallback_web: WebServer, receiver: Receiver) -> None:
    api = "/api/v1/notifications"
    routes = fallback_web.get("/openapi.json").json()["paths"]
    assert api in routes, "register the router: app.include_router(notifications.router) in app/main.py"

    for body, message in [
        ({"kind": "pager", "url": f"{receiver.url}/x"}, "kind: must be one of"),
        ({"kind": "slack", "url": "http://example.com/services/T/B/X"}, "url: slack channels need"),
        ({"kind": "webhook", "url": f"{receiver.url}/x", "events": ["port.opend"]}, "events: unknown type"),
        ({"kind": "webhook", "url": f"{receiver.url}/x", "min_severity": "severe"}, "min_severity: must be one of"),
    ]:
        response = fallback_web.post(api, json=body)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert fallback_web.get(api).json() == {"channels": [], "count": 0}

    body = {
        "kind": "webhook",
        "url": f"{receiver.url}/hook?token=abc12345",
        "events": ["port.opened"],
        "secret": SECRET,
    }
    created = fallback_web.post(api, json=body)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["signed"] is True and SECRET not in created.text and "abc12345" not in created.text
    assert channel["events"] == ["port.opened"] and channel["min_severity"] == "info"
    assert fallback_web.get(api).json()["count"] == 1

    queued = fallback_web.post(f"{api}/{channel['id']}/test")
    assert queued.status_code == 202, queued.text
    delivery_id = queued.json()["delivery_id"]
    [request] = receiver.wait(1)
    assert request.path == "/hook?token=abc12345"
    assert senders.verify(SECRET, request.headers, request.body)
    assert request.json()["event"]["type"] == "test"
    assert request.json()["event"]["summary"] == "AssetMon test notification"

    detail = wait_for(
        lambda: (d := fallback_web.get(f"{api}/{channel['id']}").json())["deliveries"][0]["status"] == "sent" and d,
        15,
        what="the test delivery to be marked sent",
    )
    [delivery] = detail["deliveries"]
    assert delivery["id"] == delivery_id and delivery["event"]["type"] == "test"
    assert [(a["attempt"], a["ok"], a["status_code"]) for a in delivery["log"]] == [(1, True, 200)]

    log = fallback_web.get(f"{api}/deliveries", params={"status": "sent"}).json()
    assert [d["id"] for d in log["deliveries"]] == [delivery_id]
    assert fallback_web.get(f"{api}/deliveries", params={"status": "failed"}).json()["count"] == 0
    assert fallback_web.get(f"{api}/deliveries", params={"status": "lost"}).status_code == 422

    assert fallback_web.post(f"{api}/999/test").status_code == 404
    assert fallback_web.delete(f"{api}/{channel['id']}").status_code == 204
    assert fallback_web.get(f"{api}/{channel['id']}").status_code == 404
    assert fallback_web.get(f"{api}/deliveries").json()["count"] == 0


def test_event_data_stays_redacted() -> None:
    from app.monitor.notify.messages import sanitize

    change = {"after": {"rule": "aws-access-key", "url": "https://acme.test/a.js", "secret": "AKIA…", "line": 3}}
    assert sanitize(change) == change  # what change detection stores is already redacted: kept as it is
    leaky = {"after": {"secret": "AKIAIOSFODNN7EXAMPLE", "api_key": "0123456789abcdef0123", "password": "hunter2"}}
    assert sanitize(leaky) == {"after": {"secret": "AKIA…", "api_key": "0123…", "password": "h…"}}
    assert sanitize({"items": list(range(500))})["items"][-1] == "… 400 more"
