"""Triage: an analyst's verdict on a secret — a false positive, or resolved (rotated, removed).

The verdict is kept by fingerprint (rule + value), not by finding row, so it holds for every finding
of that secret on any asset and across scans: a later scan that sees the secret again does not undo
it (the finding then shows that it was seen again since). Reopening deletes the verdict.
Every change is written to the audit log.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import select

from app.accounts import audit
from app.db import session_scope
from app.errors import TriageError
from app.models import SecretFinding, SecretTriage, utcnow
from app.secrets.store import FindingNotFound, triage_dict

STATUSES = ("false_positive", "resolved")
MAX_NOTE = 500

log = logging.getLogger("assetmon.secrets")


def _checked(status: str, note: str) -> str:
    if status not in STATUSES:
        raise TriageError(f"status must be one of {', '.join(STATUSES)} (or reopen), not {status!r}")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise TriageError(f"the note is {len(note)} characters long; at most {MAX_NOTE} are kept")
    return note


def mark(finding_id: int, status: str, note: str = "", actor: str = "", ip: str = "") -> dict[str, Any]:
    """Record a verdict on the secret of finding `finding_id` (on every asset it was found on)."""
    note = _checked(status, note)
    with session_scope() as session:
        finding = session.get(SecretFinding, finding_id)
        if finding is None:
            raise FindingNotFound(finding_id)
        verdict = session.get(SecretTriage, finding.fingerprint) or SecretTriage(fingerprint=finding.fingerprint)
        previous = verdict.status or "open"
        verdict.status, verdict.note, verdict.actor, verdict.updated_at = status, note, actor[:100], utcnow()
        session.add(verdict)
        session.flush()
        result = triage_dict(verdict, finding)
        subject = _subject(finding)
    audit.record(actor, "secret.triage", subject, ip, **_detail(finding), status=status, previous=previous, note=note)
    log.info("secret finding %s (%s) marked %s by %s", finding_id, finding.fingerprint[:12], status, actor or "?")
    return result


def reopen(finding_id: int, actor: str = "", ip: str = "") -> bool:
    """Drop the verdict on the secret of finding `finding_id`; False if it had none (nothing is logged then)."""
    with session_scope() as session:
        finding = session.get(SecretFinding, finding_id)
        if finding is None:
            raise FindingNotFound(finding_id)
        verdict = session.get(SecretTriage, finding.fingerprint)
        if verdict is None:
            return False
        previous = verdict.status
        session.delete(verdict)
        subject = _subject(finding)
    audit.record(actor, "secret.reopen", subject, ip, **_detail(finding), previous=previous)
    log.info("secret finding %s (%s) reopened by %s", finding_id, finding.fingerprint[:12], actor or "?")
    return True


def status_of(fingerprint: str) -> str:
    """'open', 'false_positive' or 'resolved' for a secret's fingerprint."""
    with session_scope() as session:
        status = session.exec(select(SecretTriage.status).where(SecretTriage.fingerprint == fingerprint)).first()
    return status or "open"


def _subject(finding: SecretFinding) -> str:
    return f"secret finding {finding.id}"


def _detail(finding: SecretFinding) -> dict[str, Any]:
    return {"finding_id": finding.id, "fingerprint": finding.fingerprint, "asset": finding.asset, "rule": finding.rule}
