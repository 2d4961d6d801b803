"""Verifying a stored finding: its value (unsealed), the credential that goes with it when the provider
needs a pair (an AWS key id beside its secret: a finding of that rule seen in the same file, nearby),
the answer stored with the finding, its severity raised when the credential works, and an audit entry."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from app.accounts import audit
from app.db import session_scope
from app.errors import FindingNotFound, VerificationOff
from app.models import SecretFinding, SecretSighting, utcnow
from app.secrets import sealing, verify
from app.secrets.store import get_finding
from app.settings import get_settings


def _partner(session, row: SecretFinding, partner_rule: str) -> str | None:
    places = session.exec(select(SecretSighting).where(SecretSighting.finding_id == row.id)).all()
    for place in places:
        near = session.exec(
            select(SecretFinding)
            .join(SecretSighting, col(SecretSighting.finding_id) == SecretFinding.id)
            .where(
                SecretFinding.rule == partner_rule,
                SecretFinding.asset == row.asset,
                SecretSighting.url == place.url,
                col(SecretSighting.start) > place.start - verify.PARTNER_DISTANCE,
                col(SecretSighting.start) < place.start + verify.PARTNER_DISTANCE,
            )
        ).first()
        if near is not None:
            return sealing.unseal(near.value)
    return None


def verify_finding(finding_id: int, actor: str, ip: str = "") -> dict[str, Any]:
    """Ask the provider whether the finding's credential works; returns the finding as stored now."""
    if not get_settings().secrets_verify:
        raise VerificationOff("live verification is off: set SECRETS_VERIFY=true to let admins verify findings")
    with session_scope() as session:
        row = session.get(SecretFinding, finding_id)
        if row is None:
            raise FindingNotFound(finding_id)
        rule, value = row.rule, sealing.unseal(row.value)
        partner_rule = verify.needs_partner(rule)
        partner = _partner(session, row, partner_rule) if partner_rule else None
    result = verify.verify(rule, value, partner)  # outside any transaction: it may take seconds
    with session_scope() as session:
        row = session.get(SecretFinding, finding_id)
        if row is None:
            raise FindingNotFound(finding_id)
        row.verification, row.verification_detail = result.status, result.detail[:300]
        row.verified_at = utcnow()
        row.severity = verify.raised(row.severity, result.status)
        session.add(row)
        fingerprint, asset = row.fingerprint, row.asset
    subject = f"secret finding {finding_id}"
    audit.record(actor, "secret.verify", subject, ip, fingerprint=fingerprint, asset=asset, result=result.status)
    return get_finding(finding_id)
