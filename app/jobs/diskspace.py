"""A full data directory: recognise it, say so in words, and keep enough space to record that a job failed.

With SQLite in DATA_DIR, a full disk makes every write fail ("database or disk is full"), including the one
that would mark a job failed, its heartbeat, and the reaper's attempt to settle it: the job would show
`running` at a frozen progress, with no reason, until someone freed space. So the web process keeps a small
file, `DATA_DIR/reserved-space`, while there is room; a runner that meets a full disk deletes it and uses
that space to record the outcome with a reason people understand. The file comes back once there is room
again. Deleting it by hand is safe.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from app.settings import get_settings

log = logging.getLogger(__name__)

RESERVE_NAME = "reserved-space"
RESERVE_BYTES = 4 * 1024 * 1024


def _reserve() -> Path:
    return get_settings().data_dir / RESERVE_NAME


def is_full(exc: BaseException | None) -> bool:
    """True when the error (or one it came from) is a full disk: SQLite, PostgreSQL or the file system."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def message() -> str:
    return (
        f"the disk holding AssetMon's data is full (DATA_DIR {get_settings().data_dir}): "
        "free some space, then run it again"
    )


def ensure_reserve() -> None:
    """Create the reserve file when it is missing and there is room for it (and as much again)."""
    path = _reserve()
    try:
        if path.exists() and path.stat().st_size >= RESERVE_BYTES:
            return
        if shutil.disk_usage(path.parent).free < 2 * RESERVE_BYTES:
            return
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks, not a sparse file
        finally:
            os.close(fd)
    except OSError as exc:
        log.debug("no reserve file in %s: %s", path.parent, exc)
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_size < RESERVE_BYTES:
                path.unlink()


def release_reserve() -> bool:
    """Delete the reserve file; True when there was one (so retrying a write may now succeed)."""
    try:
        _reserve().unlink()
    except OSError:
        return False
    log.error("the disk of %s is full: released the reserved space to record what failed", _reserve().parent)
    return True


def full() -> bool:
    """Less free space in DATA_DIR than the reserve's size: writes are failing, or about to."""
    try:
        return shutil.disk_usage(get_settings().data_dir).free < RESERVE_BYTES
    except OSError:
        return False
