"""Notifications: channels (where events go, with filters) and an outbox that sends, retries and logs.

channels.create({"kind": "slack", "url": "https://hooks.slack.com/services/...", "events": ["port.opened"]})
outbox.enqueue([event.id, ...])   # after a scan recorded its events
outbox.deliver_due()              # from a periodic tick: sends what is due, bounded per call
"""

from app.monitor.notify.channels import (
    EVENT_TYPES,
    KINDS,
    SEVERITIES,
    ChannelError,
    ChannelNotFound,
)
from app.monitor.notify.outbox import deliver, deliver_due, enqueue, send_test
from app.monitor.notify.senders import sign, verify

__all__ = [
    "EVENT_TYPES",
    "KINDS",
    "SEVERITIES",
    "ChannelError",
    "ChannelNotFound",
    "deliver",
    "deliver_due",
    "enqueue",
    "send_test",
    "sign",
    "verify",
]
