"""What a target's scans have found, one tab at a time: filtered, sorted and paged in SQL, or exported.

A tab is a kind of asset (subdomains, ports, web services, scripts), the secrets on the target's
hosts, its events or its scans. Every query filters, sorts (on a whitelisted column, with the row
id as tie-breaker so pages never overlap) and pages in the database: a page of a target with
50,000 ports reads one page of rows and one count, never the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, String, case, cast, false, func, or_, select
from sqlalchemy.orm import aliased

from app.db import session_scope
from app.errors import AssetQueryError
from app.models import Event, Job, Observation, Scan, SecretFinding, SecretTriage, Target, iso

TABS = ("subdomains", "ports", "services", "js", "secrets", "events", "scans")
STATES = ("present", "gone", "all")  # which observations a tab shows; only for observation tabs
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_FILTER = 200
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


@dataclass(frozen=True)
class Query:
    """What one request asks of a tab, cleaned: unknown sorts and directions fall back to the defaults."""

    tab: str
    q: str = ""
    sort: str = ""
    direction: str = ""
    state: str = "present"

    @classmethod
    def clean(
        cls,
        tab: str,
        q: str | None = None,
        sort: str | None = None,
        direction: str | None = None,
        state: str | None = None,
    ) -> Query:
        spec = _spec(tab)
        sort = sort if sort in spec.sorts else spec.default_sort
        direction = direction if direction in ("asc", "desc") else spec.default_direction(sort)
        state = state if state in STATES and spec.observed else "present"
        return cls(tab, (q or "").strip()[:MAX_FILTER], sort, direction, state)


@dataclass(frozen=True)
class Page:
    query: Query
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def start(self) -> int:
        return (self.page - 1) * self.size + 1 if self.total else 0

    @property
    def end(self) -> int:
        return min(self.total, self.page * self.size)


def _contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _like(expr: Any, text: str) -> ColumnElement[bool]:
    return expr.ilike(_contains(text), escape="\\")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# --- tabs ----------------------------------------------------------------------------------------


@dataclass
class _Spec:
    """One tab: the columns it selects, how it filters and sorts, and the row it gives back."""

    name: str
    kind: str | None  # the observation kind, for asset tabs
    columns: tuple[str, ...]  # the export's columns, in order
    sorts: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    default_sort: str = ""
    descending: tuple[str, ...] = ()  # sorts whose natural direction is newest / worst first

    @property
    def observed(self) -> bool:
        return self.kind is not None

    def default_direction(self, sort: str) -> str:
        return "desc" if sort in self.descending else "asc"


_cert = aliased(Observation, name="cert")
_value = Observation.value  # type: ignore[assignment]
_severity = case(*((SecretFinding.severity == s, r) for s, r in SEVERITY_RANK.items()), else_=-1)
_event_severity = case(*((Event.severity == s, r) for s, r in SEVERITY_RANK.items()), else_=-1)

_SPECS: dict[str, _Spec] = {
    "subdomains": _Spec(
        "subdomains",
        "subdomain",
        ("name", "addresses", "state", "missing_runs", "first_scan_id", "last_scan_id", "updated_at"),
        {
            "name": (Observation.key,),
            "updated": (Observation.updated_at,),
            "first": (Observation.id,),
            "state": (Observation.present, Observation.missing_runs),
        },
        "name",
        ("updated", "first"),
    ),
    "ports": _Spec(
        "ports",
        "port",
        ("host", "port", "state", "missing_runs", "first_scan_id", "last_scan_id", "updated_at"),
        {
            # The key is "host:port": its text order is the index's, as fast on the last page as on the first.
            "host": (Observation.key,),
            "port": (_value["port"].as_integer(), Observation.key),
            "updated": (Observation.updated_at,),
            "first": (Observation.id,),
        },
        "host",
        ("updated", "first"),
    ),
    "services": _Spec(
        "services",
        "service",
        (
            "url",
            "host",
            "port",
            "status",
            "title",
            "server",
            "technologies",
            "tls_not_after",
            "tls_issuer",
            "favicon_hash",
            "state",
            "updated_at",
        ),
        {
            "url": (Observation.key,),
            "status": (_value["status"].as_integer(),),
            "title": (_value["title"].as_string(),),
            "tech": (cast(_value["technologies"], String),),
            "tls": (_cert.value["not_after"].as_string(),),
            "updated": (Observation.updated_at,),
        },
        "url",
        ("updated",),
    ),
    "js": _Spec(
        "js",
        "js",
        ("url", "state", "missing_runs", "first_scan_id", "last_scan_id", "updated_at"),
        {"url": (Observation.key,), "updated": (Observation.updated_at,), "first": (Observation.id,)},
        "url",
        ("updated", "first"),
    ),
    "secrets": _Spec(
        "secrets",
        None,
        (
            "id",
            "severity",
            "rule",
            "description",
            "asset",
            "url",
            "line",
            "secret",
            "sightings",
            "triage",
            "first_seen",
            "last_seen",
        ),
        {
            "severity": (_severity, SecretFinding.last_seen),
            "rule": (SecretFinding.rule,),
            "asset": (SecretFinding.asset,),
            "seen": (SecretFinding.sightings,),
            "last": (SecretFinding.last_seen,),
        },
        "severity",
        ("severity", "seen", "last"),
    ),
    "events": _Spec(
        "events",
        None,
        ("id", "created_at", "severity", "type", "summary", "scan_id"),
        {
            "created": (Event.created_at,),
            "severity": (_event_severity, Event.created_at),
            "type": (Event.type,),
        },
        "created",
        ("created", "severity"),
    ),
    "scans": _Spec(
        "scans",
        None,
        (
            "scan_id",
            "status",
            "stage",
            "modules",
            "subdomains",
            "open_ports",
            "services",
            "secrets",
            "created_at",
            "finished_at",
        ),
        {"created": (Scan.created_at,), "finished": (Scan.finished_at,), "status": (Job.status,)},
        "created",
        ("created", "finished"),
    ),
}


def _spec(tab: str) -> _Spec:
    spec = _SPECS.get(tab)
    if spec is None:
        raise AssetQueryError(tab, TABS)
    return spec


def columns(tab: str) -> tuple[str, ...]:
    """The columns of a tab's export, in order."""
    return _spec(tab).columns


def sorts(tab: str) -> tuple[str, ...]:
    """The sort keys a tab accepts."""
    return tuple(_spec(tab).sorts)


# --- queries -------------------------------------------------------------------------------------


def _observations(target_id: int, spec: _Spec, query: Query) -> Select:
    cols: list[Any] = [
        Observation.id,
        Observation.key,
        Observation.value,
        Observation.present,
        Observation.missing_runs,
        Observation.first_scan_id,
        Observation.last_scan_id,
        Observation.updated_at,
    ]
    if spec.name == "services":
        cols.append(_cert.value.label("cert"))
    stmt = select(*cols).where(Observation.target_id == target_id, Observation.kind == spec.kind)
    if spec.name == "services":
        stmt = stmt.outerjoin(
            _cert, (_cert.target_id == Observation.target_id) & (_cert.kind == "cert") & (_cert.key == Observation.key)
        )
    if query.state != "all":
        stmt = stmt.where(Observation.present == (query.state == "present"))
    if query.q:
        text = cast(Observation.value, String) if spec.name in ("subdomains", "services") else None
        stmt = stmt.where(
            or_(_like(Observation.key, query.q), _like(text, query.q))
            if text is not None
            else _like(Observation.key, query.q)
        )
    return stmt


def _owned_secrets(target_id: int) -> ColumnElement[bool]:
    """Secrets on the target's hosts: its domains and their subdomains, names and addresses its scans
    found, its URLs' hosts; and any secret its scans reported (a script on a CDN counts)."""
    with session_scope() as session:
        target = session.get(Target, target_id)
    if target is None:
        return false()
    hosts = set(target.domains) | {(urlsplit(u).hostname or "").lower() for u in target.urls}
    names = select(Observation.key).where(
        Observation.target_id == target_id,
        Observation.kind.in_(("subdomain", "host")),  # type: ignore[attr-defined]
    )
    service_hosts = select(_value["host"].as_string()).where(
        Observation.target_id == target_id, Observation.kind == "service"
    )
    fingerprints = select(_value["fingerprint"].as_string()).where(
        Observation.target_id == target_id, Observation.kind == "secret"
    )
    return or_(
        SecretFinding.asset.in_(sorted(hosts - {""})),  # type: ignore[attr-defined]
        *(SecretFinding.asset.like(f"%.{d}") for d in target.domains),  # type: ignore[attr-defined]
        SecretFinding.asset.in_(names),  # type: ignore[attr-defined]
        SecretFinding.asset.in_(service_hosts),  # type: ignore[attr-defined]
        SecretFinding.fingerprint.in_(fingerprints),  # type: ignore[attr-defined]
    )


def _secrets(target_id: int, query: Query) -> Select:
    stmt = (
        select(SecretFinding, SecretTriage.status.label("triage"))  # type: ignore[attr-defined]
        .outerjoin(SecretTriage, SecretTriage.fingerprint == SecretFinding.fingerprint)
        .where(_owned_secrets(target_id))
    )
    if query.q:
        fields = (SecretFinding.rule, SecretFinding.asset, SecretFinding.url, SecretFinding.description)
        stmt = stmt.where(or_(*(_like(f, query.q) for f in fields)))
    return stmt


def _events(target_id: int, query: Query) -> Select:
    stmt = select(Event).where(Event.target_id == target_id)
    if query.q:
        stmt = stmt.where(or_(_like(Event.summary, query.q), _like(Event.type, query.q)))
    return stmt


def _scans(target_id: int, query: Query) -> Select:
    stmt = (
        select(Scan.id, Scan.stage, Scan.modules, Scan.counts, Scan.created_at, Scan.finished_at, Job.status)
        .outerjoin(Job, Job.id == Scan.job_id)
        .where(Scan.target_id == target_id)
    )
    if query.q:
        stmt = stmt.where(
            or_(Scan.id.startswith(query.q.lower()), _like(Scan.stage, query.q), _like(Job.status, query.q))
        )  # type: ignore[attr-defined]
    return stmt


def _statement(target_id: int, query: Query) -> tuple[Select, Any]:
    """The filtered statement of a tab and the id column that breaks ties."""
    spec = _spec(query.tab)
    if spec.observed:
        return _observations(target_id, spec, query), Observation.id
    if query.tab == "secrets":
        return _secrets(target_id, query), SecretFinding.id
    if query.tab == "events":
        return _events(target_id, query), Event.id
    return _scans(target_id, query), Scan.id


def _ordered(stmt: Select, tie: Any, query: Query) -> Select:
    keys = _spec(query.tab).sorts[query.sort]
    descending = query.direction == "desc"
    order = [k.desc() if descending else k.asc() for k in keys]
    return stmt.order_by(*order, tie.desc() if descending else tie.asc())


# --- rows ----------------------------------------------------------------------------------------


def _state(present: bool, missing_runs: int) -> str:
    if not present:
        return "gone"
    return f"missed {missing_runs}" if missing_runs else "present"


def _observation_row(tab: str, r: Any) -> dict[str, Any]:
    value = r.value or {}
    row: dict[str, Any] = {
        "id": r.id,
        "state": _state(r.present, r.missing_runs),
        "missing_runs": r.missing_runs,
        "first_scan_id": r.first_scan_id,
        "last_scan_id": r.last_scan_id,
        "updated_at": iso(r.updated_at),
    }
    if tab == "subdomains":
        return {"name": r.key, "addresses": value.get("addresses") or []} | row
    if tab == "ports":
        host, _, port = r.key.rpartition(":")
        return {"host": value.get("host", host), "port": value.get("port", port)} | row
    if tab == "services":
        cert = r.cert or {}
        return {
            "url": value.get("url") or r.key,
            "host": value.get("host"),
            "port": value.get("port"),
            "status": value.get("status"),
            "title": value.get("title"),
            "server": value.get("server"),
            "technologies": value.get("technologies") or [],
            "tls_not_after": cert.get("not_after"),
            "tls_issuer": cert.get("issuer"),
            "favicon_hash": value.get("favicon_hash"),
        } | row
    return {"url": r.key} | row


def _row(tab: str, r: Any) -> dict[str, Any]:
    if _SPECS[tab].observed:
        return _observation_row(tab, r)
    if tab == "secrets":
        f: SecretFinding = r[0]
        return {
            "id": f.id,
            "severity": f.severity,
            "rule": f.rule,
            "description": f.description,
            "asset": f.asset,
            "url": f.url,
            "line": f.line,
            "secret": f.redacted,  # never the value itself
            "sightings": f.sightings,
            "triage": r.triage or "",
            "first_seen": iso(f.first_seen),
            "last_seen": iso(f.last_seen),
        }
    if tab == "events":
        e: Event = r[0]
        return {
            "id": e.id,
            "created_at": iso(e.created_at),
            "severity": e.severity,
            "type": e.type,
            "summary": e.summary,
            "scan_id": e.scan_id,
        }
    counts = r.counts or {}
    return {
        "scan_id": r.id,
        "status": r.status or "failed",  # a scan whose job is gone did not finish
        "stage": r.stage,
        "modules": r.modules or [],
        "subdomains": counts.get("subdomains", 0),
        "open_ports": counts.get("open_ports", 0),
        "services": counts.get("services", 0),
        "secrets": counts.get("secrets", 0),
        "created_at": iso(r.created_at),
        "finished_at": iso(r.finished_at),
    }


# --- public --------------------------------------------------------------------------------------


def page(
    target_id: int,
    tab: str,
    q: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
    state: str | None = None,
) -> Page:
    """One page of a tab. A page past the end gives the last page; a bad sort gives the default."""
    query = Query.clean(tab, q, sort, direction, state)
    size = max(1, min(MAX_PAGE_SIZE, size))
    stmt, tie = _statement(target_id, query)
    with session_scope() as session:
        total = session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
        number = max(1, min(page, math.ceil(total / size) or 1))
        rows = session.execute(_ordered(stmt, tie, query).limit(size).offset((number - 1) * size)).all()
        return Page(query, [_row(tab, r) for r in rows], total, number, size)


def export(
    target_id: int,
    tab: str,
    q: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    state: str | None = None,
    batch: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Every row of a tab with the same filter and order as its pages, read in batches."""
    query = Query.clean(tab, q, sort, direction, state)
    stmt, tie = _statement(target_id, query)
    with session_scope() as session:
        result = session.execute(_ordered(stmt, tie, query).execution_options(yield_per=batch))
        for r in result:
            yield _row(tab, r)


def counts(target_id: int) -> dict[str, int]:
    """How many present rows each tab has (secrets, events and scans: all of them)."""
    kinds = {spec.kind: name for name, spec in _SPECS.items() if spec.observed}
    out = dict.fromkeys(TABS, 0)
    with session_scope() as session:
        for kind, n in session.execute(
            select(Observation.kind, func.count())
            .where(Observation.target_id == target_id, Observation.present == True)  # noqa: E712
            .group_by(Observation.kind)
        ).all():
            if kind in kinds:
                out[kinds[kind]] = n
        out["secrets"] = session.execute(
            select(func.count()).select_from(SecretFinding).where(_owned_secrets(target_id))
        ).scalar_one()
        out["events"] = session.execute(
            select(func.count()).select_from(Event).where(Event.target_id == target_id)
        ).scalar_one()
        out["scans"] = session.execute(
            select(func.count()).select_from(Scan).where(Scan.target_id == target_id)
        ).scalar_one()
    return out


def summaries() -> dict[int, dict[str, Any]]:
    """Per target: present subdomains, ports and services, and when it was last scanned."""
    kinds = {"subdomain": "subdomains", "port": "ports", "service": "services"}
    out: dict[int, dict[str, Any]] = {}
    with session_scope() as session:
        for target_id, kind, n in session.execute(
            select(Observation.target_id, Observation.kind, func.count())
            .where(Observation.present == True, Observation.kind.in_(tuple(kinds)))  # type: ignore[attr-defined]  # noqa: E712
            .group_by(Observation.target_id, Observation.kind)
        ).all():
            out.setdefault(target_id, {})[kinds[kind]] = n
        for target_id, last in session.execute(
            select(Scan.target_id, func.max(Scan.created_at))
            .where(Scan.target_id.is_not(None))
            .group_by(Scan.target_id)  # type: ignore[union-attr]
        ).all():
            out.setdefault(target_id, {})["last_scan_at"] = iso(last) if isinstance(last, datetime) else last
    return out
