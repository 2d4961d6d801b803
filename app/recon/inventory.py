"""Known assets of a target: imported lists, and what incremental scans may skip."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from app.db import session_scope
from app.errors import ScopeError, TargetError, TargetNotFound
from app.models import MAX_ID, Observation, Target
from app.net.names import normalise_domain
from app.recon.scope import Scope, normalise_network

MAX_IMPORT = 100_000


def import_known(target_id: int, body: Any) -> dict[str, Any]:
    """Record subdomains/hosts as already known (no events). Out-of-scope or invalid entries refuse
    the whole import, so nothing is half-imported."""
    with session_scope() as session:
        target = session.get(Target, target_id) if 0 < target_id <= MAX_ID else None
    if target is None:
        raise TargetNotFound(target_id)
    scope = Scope.of_target(target)
    if not isinstance(body, dict) or set(body) - {"subdomains", "hosts"} or not body:
        raise TargetError('send {"subdomains": [...], "hosts": [...]}')
    names, hosts = body.get("subdomains") or [], body.get("hosts") or []
    if not all(isinstance(x, list) for x in (names, hosts)) or len(names) + len(hosts) > MAX_IMPORT:
        raise TargetError(f"'subdomains' and 'hosts' must be lists (at most {MAX_IMPORT:,} entries)")
    clean: list[tuple[str, str]] = []
    try:
        for name in names:
            value = normalise_domain(str(name))
            if not scope.name_in_scope(value):
                raise TargetError(f"{value} is outside the target's scope")
            clean.append(("subdomain", value))
        for host in hosts:
            value = normalise_network(str(host), max_prefix=32).split("/")[0]
            clean.append(("host", value))
    except ScopeError as exc:
        raise TargetError(str(exc)) from None
    added = 0
    with session_scope() as session:
        have = {
            (o.kind, o.key) for o in session.exec(select(Observation).where(Observation.target_id == target.id)).all()
        }
        for kind, key in dict.fromkeys(clean):
            if (kind, key) in have:
                continue
            value = {"addresses": []} if kind == "subdomain" else {}
            session.add(Observation(target_id=target.id, kind=kind, key=key, value=value | {"imported": True}))
            added += 1
    return {"target_id": target.id, "imported": added, "already_known": len(set(clean)) - added}


def known(target_id: int) -> tuple[set[str], set[str]]:
    """(names, addresses) this target already knows: imported, or seen by earlier scans."""
    names: set[str] = set()
    addresses: set[str] = set()
    with session_scope() as session:
        for kind, key in session.exec(
            select(Observation.kind, Observation.key).where(Observation.target_id == target_id)
        ).all():
            if kind == "subdomain":
                names.add(key)
            elif kind == "host":
                addresses.add(key)
            elif kind == "port":
                addresses.add(key.rsplit(":", 1)[0])
    return names, addresses
