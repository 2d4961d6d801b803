"""Targets: create, read, update, delete. Every write validates the whole target first."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.db import session_scope
from app.errors import ScheduleError, ScopeError, TargetError, TargetExists, TargetNotFound
from app.models import MAX_ID, Target, iso, utcnow
from app.net.text import has_lone_surrogate
from app.recon import schedule as schedule_spec
from app.recon.options import check_options
from app.recon.scope import Scope


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TargetError("'name' is required: a short label such as 'acme-prod'")
    name = value.strip()
    if len(name) > 200 or any(ord(c) < 32 for c in name) or has_lone_surrogate(name):
        raise TargetError("'name' must be at most 200 printable characters")
    if name.isdigit():
        raise TargetError("'name' cannot be only digits (it would be confused with a target id)")
    return name


def validate(data: dict[str, Any], partial: Target | None = None) -> dict[str, Any]:
    """The stored form of a target body (all of it, or a change to `partial`); raises TargetError."""
    if not isinstance(data, dict):
        raise TargetError("the body must be a JSON object")
    allowed = {"name", "domains", "cidrs", "urls", "scope", "scan_options", "schedule"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TargetError(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    merged = {
        "name": partial.name if partial else None,
        "domains": partial.domains if partial else [],
        "cidrs": partial.cidrs if partial else [],
        "urls": partial.urls if partial else [],
        "scope": partial.scope if partial else {},
        "scan_options": partial.scan_options if partial else {},
        "schedule": partial.schedule if partial else None,
    } | data
    try:
        scope = Scope.build(merged["domains"] or [], merged["cidrs"] or [], merged["urls"] or [], merged["scope"] or {})
    except ScopeError as exc:
        raise TargetError(str(exc)) from None
    options = check_options(merged["scan_options"] or {})
    try:
        schedule = schedule_spec.check(merged["schedule"])
    except ScheduleError as exc:
        raise TargetError(f"schedule: {exc}") from None
    return {
        "name": _name(merged["name"]),
        "domains": scope.domains,
        "cidrs": scope.networks,
        "urls": scope.urls,
        "scope": {"include": scope.include, "exclude": scope.exclude},
        "scan_options": options,
        "schedule": schedule,
    }


def to_dict(target: Target) -> dict[str, Any]:
    return {
        "target_id": target.id,
        "name": target.name,
        "domains": target.domains,
        "cidrs": target.cidrs,
        "urls": target.urls,
        "scope": target.scope,
        "scan_options": target.scan_options,
        "schedule": target.schedule,
        "next_run_at": iso(target.next_run_at),
        "last_run_at": iso(target.last_run_at),
        "created_at": iso(target.created_at),
        "updated_at": iso(target.updated_at),
    }


def _first_run(schedule: dict | None) -> datetime | None:
    return schedule_spec.next_run(schedule, utcnow()) if schedule else None


def create(data: dict[str, Any]) -> Target:
    values = validate(data)
    try:
        with session_scope() as session:
            target = Target(**values, next_run_at=_first_run(values["schedule"]))
            session.add(target)
            session.flush()
            session.refresh(target)
            return target
    except IntegrityError:
        raise TargetExists(f"a target named {values['name']!r} exists already") from None


def get(ref: int | str) -> Target:
    """By id, or by name."""
    with session_scope() as session:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            # "²" is a digit to isdigit() but not to int(); no id is beyond the database's integers.
            number = int(ref) if isinstance(ref, int) or re.fullmatch(r"[0-9]{1,10}", ref) else 0
            target = session.get(Target, number) if 0 < number <= MAX_ID else None
        else:
            target = session.exec(select(Target).where(Target.name == ref)).first()
        if target is None:
            raise TargetNotFound(ref)
        return target


def find(ref: str) -> Target | None:
    try:
        return get(ref)
    except TargetNotFound:
        return None


def list_targets(limit: int = 500) -> list[Target]:
    with session_scope() as session:
        return list(session.exec(select(Target).order_by(col(Target.name)).limit(limit)).all())


def update(target_id: int, data: dict[str, Any]) -> Target:
    try:
        with session_scope() as session:
            target = session.get(Target, target_id)
            if target is None:
                raise TargetNotFound(target_id)
            values = validate(data, partial=target)
            if values["schedule"] != target.schedule:
                target.next_run_at = _first_run(values["schedule"])
            for key, value in values.items():
                setattr(target, key, value)
            target.updated_at = utcnow()
            session.add(target)
            session.flush()
            session.refresh(target)
            return target
    except IntegrityError:
        raise TargetExists(f"a target named {data.get('name')!r} exists already") from None


def delete(target_id: int) -> None:
    with session_scope() as session:
        target = session.get(Target, target_id)
        if target is None:
            raise TargetNotFound(target_id)
        session.delete(target)
