"""Recon scans as records: validated options, one row per scan (its own id from the start), its job.

A scan's state is its job's state (queued / running / succeeded / failed / cancelled), so the two
can never disagree; the scan row holds the stage, the counts and the (incrementally written) result.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from app import jobs
from app.db import session_scope
from app.models import Scan, Target, iso, utcnow
from app.scope import Scope, ScopeError

MODULES = ("subdomains", "dns", "ports", "http", "js")
OPTION_KEYS = ("modules", "resolvers", "ct_url", "ports", "http_ports", "incremental")
ACTIVE = ("queued", "running")
TASK = "recon_scan"


class ScanError(Exception):
    status_code = 422


class ScanBusy(ScanError):
    status_code = 409


class ScanNotFound(ScanError):
    status_code = 404

    def __init__(self, scan_id: str) -> None:
        super().__init__(f"no scan with id {scan_id!r}")


def check_modules(modules: Any) -> list[str]:
    if modules is None:
        return list(MODULES)
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(",") if m.strip()]
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise ScanError(f"'modules' must be a non-empty list of: {', '.join(MODULES)}")
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        raise ScanError(f"unknown module(s) {', '.join(unknown)}; modules are {', '.join(MODULES)}")
    return [m for m in MODULES if m in modules]  # stage order, no duplicates


def check_options(options: Any) -> dict[str, Any]:
    """Scan options (the same keys in the API, the CLI and a target's scan_options); raises ScanError."""
    from app.scanners.dns import ResolverError, parse_resolver
    from app.scanners.ports import PortSpecError, parse_ports

    if not isinstance(options, dict):
        raise ScanError("'options' must be a JSON object")
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ScanError(f"unknown option(s) {', '.join(unknown)}; options are {', '.join(OPTION_KEYS)}")
    clean: dict[str, Any] = {}
    if options.get("modules") is not None:
        clean["modules"] = check_modules(options["modules"])
    if options.get("resolvers") is not None:
        resolvers = options["resolvers"]
        if not isinstance(resolvers, list) or not resolvers or not all(isinstance(r, str) for r in resolvers):
            raise ScanError("'resolvers' must be a non-empty list of \"HOST:PORT\" strings")
        try:
            clean["resolvers"] = [
                f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in map(parse_resolver, resolvers)
            ]
        except ResolverError as exc:
            raise ScanError(f"resolvers: {exc}") from None
    if options.get("ct_url") is not None:
        from urllib.parse import urlsplit

        url = options["ct_url"]
        try:
            scheme = urlsplit(url).scheme if isinstance(url, str) and url.isprintable() else ""
        except ValueError:  # e.g. an unclosed [ in the host
            scheme = ""
        if "{domain}" not in str(url) or scheme not in ("http", "https"):
            raise ScanError("'ct_url' must be an http(s) URL template containing {domain}")
        clean["ct_url"] = url
    if options.get("ports") is not None:
        spec = options["ports"]
        if not isinstance(spec, str):
            raise ScanError('\'ports\' must be a port spec string such as "80,443,8000-8100" or "top100"')
        try:
            parse_ports(spec)
        except PortSpecError as exc:
            raise ScanError(f"ports: {exc}") from None
        clean["ports"] = spec
    if options.get("http_ports") is not None:
        ports = options["http_ports"]
        if (
            not isinstance(ports, list)
            or not ports
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports)
        ):
            raise ScanError("'http_ports' must be a non-empty list of port numbers (1-65535)")
        clean["http_ports"] = sorted(set(ports))
    if options.get("incremental") is not None:
        if not isinstance(options["incremental"], bool):
            raise ScanError("'incremental' must be true or false")
        clean["incremental"] = options["incremental"]
    return clean


def resolve_target(text_or_ref: str) -> tuple[Target | None, Scope, str]:
    """A stored target (by name or id), or a quick target typed as a domain, address/CIDR or URL."""
    from app import targets

    stored = targets.find(text_or_ref.strip()) if text_or_ref and text_or_ref.strip() else None
    if stored is not None:
        return stored, targets.scope_of(stored), stored.name
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
) -> Scan:
    """Validate, record the scan, and queue its job. Nothing is written when the input is bad;
    a stored target with a scan queued or running gets ScanBusy (409), whoever asks."""
    from app import dispatch

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
    return scan


def _active_scan(session, target_id: int) -> tuple[str, str] | None:
    """(scan id, state) of the target's scan that is queued or running (or being created), if any."""
    from app.models import Job

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
            job = jobs.get_job(scan.job_id)
        except jobs.JobNotFound:
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
