"""JSON API for notifications: channels (create, list, inspect, delete), test messages, the delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Query, Response

from app.monitor.notify import channels, outbox
from app.web.api import RowId, RowIdFilter, UnicodeOnly

router = APIRouter(prefix="/api/v1", tags=["notifications"])

_STATUS = "^(pending|sending|sent|failed)$"


@router.post("/notifications", status_code=201)
def create_channel(body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"kind": webhook|slack|discord|telegram|email, "url", "events"?: [...] ([] = all), "min_severity"?,
    "secret"? (webhooks: HMAC-SHA256 key), "enabled"?}. The answer never shows secrets or tokens."""
    return channels.to_dict(channels.create(body))


@router.get("/notifications")
def list_channels() -> dict[str, Any]:
    rows = [channels.to_dict(c) for c in channels.list_channels()]
    return {"channels": rows, "count": len(rows)}


@router.get("/notifications/deliveries")
def list_deliveries(
    status: Annotated[str | None, Query(pattern=_STATUS)] = None,
    channel_id: RowIdFilter = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The delivery log, newest first, with every attempt."""
    rows = outbox.describe(outbox.list_deliveries(status, channel_id, limit), with_attempts=True)
    return {"deliveries": rows, "count": len(rows)}


@router.get("/notifications/{channel_id}")
def get_channel(channel_id: RowId, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
    """The channel with its most recent deliveries and their attempts."""
    channel = channels.get(channel_id)
    recent = outbox.list_deliveries(channel_id=channel_id, limit=limit)
    return channels.to_dict(channel) | {"deliveries": outbox.describe(recent, with_attempts=True)}


@router.delete("/notifications/{channel_id}", status_code=204)
def delete_channel(channel_id: RowId) -> Response:
    channels.delete(channel_id)
    return Response(status_code=204)


@router.post("/notifications/{channel_id}/test", status_code=202)
def send_test(channel_id: RowId, background: BackgroundTasks) -> dict[str, Any]:
    """Queue "AssetMon test notification" and send it right away (in the background, bounded by the timeout);
    GET /notifications/{id} shows how it went."""
    delivery = outbox.send_test(channel_id)
    background.add_task(outbox.deliver, [delivery.id])
    return {"delivery_id": delivery.id, "status": delivery.status}
