"""Stored secret findings: one row per (asset, fingerprint), one sighting per place and job.

A secret seen again by a later scan, or in another file of the same asset, updates its row
instead of adding a new finding. Each file's findings are written in one transaction.
An analyst's verdict (app.secrets.triage) is kept by fingerprint and read back here with each finding.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import case, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.accounts import audit
from app.db import session_scope
from app.errors import BadConfidenceFilter, BadStatusFilter, FindingNotFound
from app.models import SecretFinding, SecretSighting, SecretTriage, aware, iso, utcnow
from app.secrets import sealing
from app.secrets.engine import Finding
from app.secrets.rules import CONFIDENCES
from app.secrets.snippets import beautify, readable

SEVERITY_ORDER = ("critical", "high", "medium", "low")
# What a list can show: findings nobody has triaged yet, those marked one way or the other, or all.
STATUS_FILTERS = ("open", "false_positive", "resolved", "all")

log = logging.getLogger("assetmon.secrets")


def asset_of(url: str) -> str:
    """The asset a URL belongs to: its host name (lower case, no trailing dot)."""
    return (urlsplit(url).hostname or url).lower().rstrip(".")


def record(findings: list[Finding], url: str, job_id: str | None) -> int:
    """Store the findings of one fetched file; returns how many findings are new to the asset."""
    if not findings:
        return 0
    for attempt in range(3):
        try:
            with session_scope() as session:
                return sum(_upsert(session, f, url, job_id) for f in findings)
        except IntegrityError:
            # Another job stored the same secret for this asset at the same moment; its row exists now.
            if attempt == 2:
                raise
    return 0


def _upsert(session: Session, f: Finding, url: str, job_id: str | None) -> bool:
    asset = asset_of(url)
    row = session.exec(
        select(SecretFinding).where(SecretFinding.asset == asset, SecretFinding.fingerprint == f.fingerprint)
    ).first()
    new = row is None
    context = readable(f)[0][:4000]  # beautified, redacted: what people read in the UI
    if row is None:
        row = SecretFinding(
            asset=asset,
            fingerprint=f.fingerprint,
            rule=f.rule,
            description=f.description[:300],
            severity=f.severity,
            confidence=f.confidence,
            redacted=f.redacted()[:100],
            value=sealing.seal(f.secret),
            url=url[:2048],
            line=f.line,
            column=f.column,
            context=context,
            first_job_id=job_id,
        )
        session.add(row)
        session.flush()
    seen = session.exec(
        select(SecretSighting.id).where(
            SecretSighting.finding_id == row.id,
            SecretSighting.job_id == job_id,
            SecretSighting.url == url[:2048],
            SecretSighting.start == f.start,
        )
    ).first()
    if seen is None:
        session.add(
            SecretSighting(
                finding_id=row.id,
                job_id=job_id,
                url=url[:2048],
                start=f.start,
                end=f.end,
                line=f.line,
                column=f.column,
                source=(f.source or None) and f.source[:1000],
                source_line=f.source_line,
                context=context,
            )
        )
        row.sightings += 1
    row.last_seen = utcnow()
    row.last_job_id = job_id
    session.add(row)
    return new


def triage_dict(verdict: SecretTriage, finding: SecretFinding) -> dict[str, Any]:
    """The verdict on a finding's fingerprint, and whether a scan has seen the secret since."""
    return {
        "status": verdict.status,
        "note": verdict.note,
        "actor": verdict.actor,
        "updated_at": iso(verdict.updated_at),
        "seen_again": aware(finding.last_seen) > aware(verdict.updated_at),
    }


def finding_dict(
    row: SecretFinding, sightings: list[SecretSighting] | None = None, verdict: SecretTriage | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id,
        "asset": row.asset,
        "rule": row.rule,
        "description": row.description,
        "severity": row.severity,
        "confidence": row.confidence,
        "secret": row.redacted,
        "fingerprint": row.fingerprint,
        "url": row.url,
        "line": row.line,
        "column": row.column,
        "context": row.context,
        "sightings": row.sightings,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "first_job_id": row.first_job_id,
        "last_job_id": row.last_job_id,
        "triage": triage_dict(verdict, row) if verdict is not None else None,
        "verification": {
            "status": row.verification,
            "detail": row.verification_detail,
            "checked_at": iso(row.verified_at),
        }
        if row.verification
        else None,
    }
    if sightings is not None:
        data["locations"] = [sighting_dict(s) for s in sightings]
    return data


def display_context(context: str) -> str:
    """A stored context as people read it. Since the beautified window became what is stored, this is
    the stored text; rows stored before that hold one raw line (newlines shown as ⏎): beautify those."""
    if "\n" in context or ("⏎" not in context and len(context) <= 120):
        return context
    return beautify(context.replace("⏎", "\n"))


def sighting_dict(s: SecretSighting) -> dict[str, Any]:
    data: dict[str, Any] = {
        "url": s.url,
        "job_id": s.job_id,
        "start": s.start,
        "end": s.end,
        "line": s.line,
        "column": s.column,
        "context": s.context,
        "seen_at": iso(s.seen_at),
    }
    if s.source:
        data.update(source=s.source, source_line=s.source_line)
    return data


def _with_verdicts(query, status: str):
    """Join each finding to the verdict on its fingerprint (if any) and keep those with `status`."""
    if status not in STATUS_FILTERS:
        raise BadStatusFilter(status, STATUS_FILTERS)
    query = query.join(SecretTriage, col(SecretTriage.fingerprint) == SecretFinding.fingerprint, isouter=True)
    if status == "open":
        return query.where(col(SecretTriage.fingerprint).is_(None))
    if status != "all":
        return query.where(SecretTriage.status == status)
    return query


def _for_asset(query, asset: str | None):
    return query.where(SecretFinding.asset == asset.lower().rstrip(".")) if asset else query


def _confident(query, minimum: str):
    """Keep findings of at least this confidence (low keeps all)."""
    if minimum not in CONFIDENCES:
        raise BadConfidenceFilter(f"confidence must be one of {', '.join(CONFIDENCES)}, not {minimum!r}")
    return query.where(col(SecretFinding.confidence).in_(CONFIDENCES[CONFIDENCES.index(minimum) :]))


def list_findings(
    asset: str | None = None,
    job_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    status: str = "all",
    min_confidence: str = "low",
) -> list[dict[str, Any]]:
    """Findings, worst and newest first; per asset, or those a job saw (with that job's locations).
    `status`: 'open' (not triaged), 'false_positive', 'resolved' or 'all'; `min_confidence`: low,
    medium or high (what the evidence is: a keyword, a provider's prefix, a checksum)."""
    with session_scope() as session:
        query = _with_verdicts(_for_asset(select(SecretFinding, SecretTriage), asset), status)
        query = _confident(query, min_confidence)
        if job_id:
            query = query.where(
                col(SecretFinding.id).in_(select(SecretSighting.finding_id).where(SecretSighting.job_id == job_id))
            )
        worst_first = case(*((SecretFinding.severity == s, i) for i, s in enumerate(SEVERITY_ORDER)), else_=9)
        ordering = (worst_first, col(SecretFinding.last_seen).desc(), col(SecretFinding.id).desc())
        rows = session.exec(query.order_by(*ordering).offset(offset).limit(limit)).all()
        places = select(SecretSighting).where(col(SecretSighting.finding_id).in_([r.id for r, _ in rows]))
        if job_id:
            places = places.where(SecretSighting.job_id == job_id)
        by_finding: dict[int, list[SecretSighting]] = {}
        for s in session.exec(places.order_by(col(SecretSighting.id))).all():
            by_finding.setdefault(s.finding_id, []).append(s)
        return [finding_dict(r, by_finding.get(r.id, []), verdict) for r, verdict in rows]


def counts(asset: str | None = None) -> dict[str, int]:
    """How many findings each status filter shows (for one asset, or all)."""
    with session_scope() as session:
        status = func.coalesce(SecretTriage.status, "open")
        query = select(status, func.count()).select_from(SecretFinding)
        query = _with_verdicts(_for_asset(query, asset), "all").group_by(status)
        found = dict(session.exec(query).all())
    result = {s: found.get(s, 0) for s in STATUS_FILTERS if s != "all"}
    return result | {"all": sum(found.values())}


def assets() -> list[dict[str, Any]]:
    """Assets with stored secrets: how many, and when one was last seen."""
    with session_scope() as session:
        rows = session.exec(
            select(SecretFinding.asset, func.count(), func.max(SecretFinding.last_seen))
            .group_by(SecretFinding.asset)
            .order_by(SecretFinding.asset)
        ).all()
    return [{"asset": a, "findings": n, "last_seen": iso(last)} for a, n, last in rows]


def get_finding(finding_id: int, max_sightings: int | None = None) -> dict[str, Any]:
    """One finding with its verdict and its sightings (the newest `max_sightings`, or all, oldest first)."""
    with session_scope() as session:
        row = session.get(SecretFinding, finding_id)
        if row is None:
            raise FindingNotFound(finding_id)
        places = select(SecretSighting).where(SecretSighting.finding_id == finding_id)
        if max_sightings is not None:
            places = places.order_by(col(SecretSighting.id).desc()).limit(max_sightings)
        sightings = sorted(session.exec(places).all(), key=lambda s: s.id or 0)
        verdict = session.get(SecretTriage, row.fingerprint)
        return finding_dict(row, sightings, verdict)


def reveal(finding_id: int, actor: str, ip: str = "") -> str:
    """The full secret value, for `actor` (already allowed to see it); every reveal is audited and logged."""
    with session_scope() as session:
        row = session.get(SecretFinding, finding_id)
        if row is None:
            raise FindingNotFound(finding_id)
        value, fingerprint, asset, rule = row.value, row.fingerprint, row.asset, row.rule
    audit.record(
        actor, "secret.reveal", f"secret finding {finding_id}", ip, fingerprint=fingerprint, asset=asset, rule=rule
    )
    log.warning("secret finding %s revealed to %s from %s", finding_id, actor, ip or "?")
    return sealing.unseal(value)
