"""The mode and health summary shown by /healthz, the mode badge and `assetmon health`."""

from __future__ import annotations

from typing import Any

from app import __version__
from app.db import check_db
from app.jobs import broker, diskspace


def health(max_age: float | None = None) -> dict[str, Any]:
    status = broker.status(max_age=max_age)
    body: dict[str, Any] = {
        "status": "ok",
        "mode": status.mode,
        "redis": "ok" if status.redis_ok else "unreachable",
        "workers": len(status.workers),
        "db": "ok" if check_db() else "unreachable",
        "version": __version__,
    }
    if status.mode == "fallback":
        body["reason"] = f"{status.reason}; jobs run inside the web process"
    body["disk"] = "full" if diskspace.full() else "ok"
    if body["disk"] != "ok":  # writes fail: jobs, scans and settings cannot be saved
        body["reason"] = "; ".join(filter(None, [body.get("reason"), diskspace.message()]))
    if body["db"] != "ok" or body["disk"] != "ok":
        body["status"] = "degraded"
    return body
