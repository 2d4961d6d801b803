"""Recon scans as records: one row per scan (its own id from the start), and its job.

A scan's state is its job's state (queued / running / succeeded / failed / cancelled), so the two
can never disagree; the scan row holds the stage, the counts and the (incrementally written) result.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from app.db import session_scope
from app.errors import JobNotFound, ScanBusy, ScanError, ScanNotFound, ScopeError
from app.jobs import dispatch, store
from app.models import Job, Scan, Target, iso, utcnow
from app.recon import targets
from app.recon.options import check_modules, check_options
from app.recon.scope import Scope

ACTIVE = ("queued", "running")
TASK = "recon_scan"  # the job that runs a scan (app/tasks.py)


def resolve_target(text_or_ref: str) -> tuple[Target | None, Scope, str]:
    """A stored target (by name or id), or a quick target typed as a domain, address/CIDR or URL."""
    stored = targets.find(text_or_ref.strip()) if text_or_ref and text_or_ref.strip() else None
    if stored is not None:
        return stored, Scope.of_target(stored), stored.name
    try:
        return None, Scope.parse_target(text_or_ref), text_or_ref.strip()
    except ScopeError as exc:
        raise ScanError(str(exc)) from None


def create(
    target: str,
    modules: Any = None,
    options: Any = None,
    background: Any = None,
    source: str = "api",
    queue: str | None = None,
) -> tuple[Scan, Job]:
    """Validate, record the scan, and queue its job; returns the scan and its job as it was queued.
    Nothing is written when the input is bad; a stored target with a scan queued or running gets
    ScanBusy (409), whoever asks."""
    if not isinstance(target, str):
        raise ScanError("'target' must be a string: a target's name or id, a domain, an IP/CIDR or a URL")
    stored, scope, label = resolve_target(target)
    clean = (stored.scan_options if stored else {}) | check_options(options or {})
    chosen = check_modules(modules if modules is not None else clean.pop("modules", None))
    clean.pop("modules", None)
    scan = Scan(
        id=uuid.uuid4().hex,
        target_id=stored.id if stored else None,
        target=label[:300],
        spec=scope.as_dict(),
        modules=chosen,
        options=clean | {"source": source},
        stage="queued",
    )
    with session_scope() as session:
        if stored is not None:
            # Lock the target row first (SQLite: the write lock; PostgreSQL: the row), so two callers
            # cannot both see "no active scan" and both start one.
            session.execute(update(Target).where(col(Target.id) == stored.id).values(updated_at=Target.updated_at))
            busy = _active_scan(session, stored.id)
            if busy is not None:
                raise ScanBusy(f"target {stored.name!r} has a scan {busy[1]} already (scan {busy[0]})")
        session.add(scan)
    try:
        job = dispatch.submit(TASK, {"scan_id": scan.id}, background=background, queue=queue)
    except Exception:
        with session_scope() as session:  # no half-written scan without a job
            row = session.get(Scan, scan.id)
            if row is not None:
                session.delete(row)
        raise
    with session_scope() as session:
        row = session.get(Scan, scan.id)
        if row is not None:
            row.job_id = job.id
            session.add(row)
    scan.job_id = job.id
    return scan, job


def _active_scan(session, target_id: int) -> tuple[str, str] | None:
    """(scan id, state) of the target's scan that is queued or running (or being created), if any."""
    rows = session.exec(
        select(Scan.id, Scan.job_id, Job.status)
        .join(Job, col(Job.id) == col(Scan.job_id), isouter=True)
        .where(Scan.target_id == target_id, col(Scan.finished_at).is_(None))
    ).all()
    for scan_id, job_id, status in rows:
        if job_id is None or status in ACTIVE:
            return scan_id, "being created" if job_id is None else status
    return None


def get(scan_id: str) -> Scan:
    with session_scope() as session:
        scan = session.get(Scan, scan_id)
        if scan is None:
            raise ScanNotFound(scan_id)
        return scan


def save(scan_id: str, **values: Any) -> None:
    with session_scope() as session:
        scan = session.get(Scan, scan_id)
        if scan is None:
            raise ScanNotFound(scan_id)
        for key, value in values.items():
            setattr(scan, key, value)
        session.add(scan)


def list_scans(target_id: int | None = None, limit: int = 50) -> list[Scan]:
    with session_scope() as session:
        query = select(Scan)
        if target_id is not None:
            query = query.where(Scan.target_id == target_id)
        return list(session.exec(query.order_by(col(Scan.created_at).desc()).limit(limit)).all())


def to_dict(scan: Scan, with_result: bool = True) -> dict[str, Any]:
    job = None
    if scan.job_id:
        try:
            job = store.get_job(scan.job_id)
        except JobNotFound:
            job = None
    status = job.status if job else "failed"
    data: dict[str, Any] = {
        "scan_id": scan.id,
        "target": scan.target,
        "target_id": scan.target_id,
        "job_id": scan.job_id,
        "status": status,
        "backend": job.backend if job else None,
        "stage": scan.stage,
        "progress": job.progress if job else 0,
        "message": (job.error or job.message) if job else "its job is gone",
        "modules": scan.modules,
        "options": scan.options,
        "counts": scan.counts,
        "created_at": iso(scan.created_at),
        "finished_at": iso(scan.finished_at) or (iso(job.finished_at) if job else None),
    }
    if with_result:
        data["result"] = scan.result
    return data


def mark_finished(scan_id: str) -> None:
    save(scan_id, finished_at=utcnow())
