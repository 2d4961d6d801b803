"""A scan as the monitor runs it: the recon pipeline, then what changed since the target's earlier scans,
then the notifications for it. This is what the `recon_scan` job runs (app/tasks.py)."""

from __future__ import annotations

import logging
from typing import Any

from app.jobs import current_job
from app.monitor import changes
from app.monitor.notify import outbox
from app.recon import run_scan, summary_line

log = logging.getLogger("assetmon.recon")


def scan_and_compare(scan_id: str) -> dict[str, Any]:
    """Run the scan; its events, when it scanned a stored target; a summary (the document is on the scan)."""
    result = run_scan(scan_id)
    events = record_changes(scan_id)
    summary = summary_line(result["counts"])
    if events:
        summary += f"; {len(events)} event(s)"
    current_job().progress(100, f"Done: {summary}", force=True)
    return result | {"events": len(events)}


def record_changes(scan_id: str) -> list[int]:
    """Events for a stored target's scan, queued for notification. Never fails the scan itself."""
    try:
        event_ids = changes.detect(scan_id)
    except Exception:
        log.exception("change detection for scan %s failed", scan_id)
        return []
    if event_ids:
        try:
            outbox.enqueue(event_ids)
        except Exception:
            log.exception("queueing notifications for scan %s failed", scan_id)
    return event_ids
