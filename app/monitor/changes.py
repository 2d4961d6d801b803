"""What changed since the target's previous scans: observations in, events out.

Every successful scan of a stored target is compared with what earlier scans observed (one
`Observation` row per name, port, service, certificate, script, secret, takeover candidate).
The first scan is a baseline: one `scan.baseline` event, not a flood of "new". Something missing
from a scan is only `gone` after GONE_AFTER_MISSING_RUNS successful scans in a row missed it, and
only for the kinds the scan really looked at (a scan without the ports module says nothing about
ports; a scan whose DNS failed says nothing about names; an incremental scan says nothing about
what it skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from app.db import session_scope
from app.models import Event, Observation, Scan, Target, aware, utcnow
from app.settings import get_settings

log = logging.getLogger("assetmon.changes")

SEVERITY = {
    "scan.baseline": "info",
    "subdomain.new": "low",
    "subdomain.gone": "low",
    "dns.changed": "low",
    "port.opened": "medium",
    "port.closed": "low",
    "service.new": "medium",
    "service.changed": "low",
    "cert.changed": "low",
    "cert.expiring": "medium",
    "js.new": "info",
    "secret.new": "high",
    "takeover.candidate": "high",
}
EVENT_TYPES = tuple(SEVERITY)
SERVICE_FIELDS = ("status", "title", "server", "technologies")


@dataclass(frozen=True)
class Seen:
    kind: str
    key: str
    value: dict[str, Any]


def observe(document: dict[str, Any]) -> list[Seen]:
    """Everything a scan's result document shows, as (kind, key, value)."""
    seen: list[Seen] = []
    for sub in document.get("subdomains", []):
        seen.append(Seen("subdomain", sub["name"], {"addresses": sorted(sub.get("addresses", []))}))
        if sub.get("takeover"):
            seen.append(Seen("takeover", sub["name"], {"provider": sub["takeover"], "cname": sub.get("cname")}))
    for host in document.get("hosts", []):
        for port in host.get("open_ports", []):
            seen.append(Seen("port", f"{host['host']}:{port}", {"host": host["host"], "port": port}))
    for service in document.get("services", []):
        key = service["url"] if service.get("hostname") else f"{service['url']}@{service['host']}"
        seen.append(
            Seen("service", key, {f: service.get(f) for f in (*SERVICE_FIELDS, "url", "host", "port", "favicon_hash")})
        )
        tls = service.get("tls")
        if tls and tls.get("fingerprint_sha256"):
            value = {k: tls.get(k) for k in ("fingerprint_sha256", "subject_cn", "issuer", "not_after", "sans")}
            seen.append(Seen("cert", key, value | {"url": service["url"]}))
    for url in document.get("js_files", []):
        seen.append(Seen("js", url, {"url": url}))
    for secret in document.get("secrets", []):
        seen.append(Seen("secret", f"{secret['fingerprint']}@{secret['url']}", dict(secret)))
    return seen


def _looked_at(scan: Scan, document: dict[str, Any]) -> set[str]:
    """Kinds this scan observed completely enough that a missing item means something."""
    if scan.options.get("incremental"):
        return set()
    modules = set(scan.modules)
    warnings = " ".join(document.get("warnings", []))
    kinds = set()
    dns_failed = any(p in warnings for p in ("resolution failed", "brute force of", "stopped:"))
    if "subdomains" in modules and not dns_failed:
        kinds |= {"subdomain", "takeover"}
    if "ports" in modules and not dns_failed:
        kinds.add("port")
    if "http" in modules and not dns_failed:
        kinds |= {"service", "cert"}
    if "js" in modules and not dns_failed:
        kinds |= {"js", "secret"}
    return kinds


class _Events:
    def __init__(self, target_id: int, target_name: str, scan_id: str) -> None:
        self.target_id, self.target_name, self.scan_id = target_id, target_name, scan_id
        self.rows: list[Event] = []

    def add(self, kind: str, summary: str, **data: Any) -> None:
        self.rows.append(
            Event(
                target_id=self.target_id,
                scan_id=self.scan_id,
                type=kind,
                severity=SEVERITY[kind],
                summary=f"{summary} on {self.target_name}"[:500],
                data=data,
            )
        )


def _dns_changed(events: _Events, item: Seen, before: dict[str, Any]) -> None:
    after = item.value
    if before.get("addresses") != after["addresses"]:
        was, now = ", ".join(before.get("addresses", [])) or "nothing", ", ".join(after["addresses"]) or "nothing"
        events.add("dns.changed", f"{item.key} now resolves to {now} (was {was})", before=before, after=after)


def _service_changed(events: _Events, item: Seen, before: dict[str, Any]) -> None:
    after = item.value
    changed = [f for f in SERVICE_FIELDS if before.get(f) != after.get(f)]
    if changed:
        what = ", ".join(f"{f} {before.get(f)!r} → {after.get(f)!r}" for f in changed)
        summary = f"{after['url']} changed: {what}"[:400]
        events.add("service.changed", summary, before=before, after=after, fields=changed)


def _cert_changed(events: _Events, item: Seen, before: dict[str, Any]) -> None:
    after = item.value
    if before.get("fingerprint_sha256") != after["fingerprint_sha256"]:
        events.add("cert.changed", f"The certificate of {after['url']} changed", before=before, after=after)


@dataclass(frozen=True)
class Kind:
    """How changes of one kind of observation read: the event when it appears (or comes back) and when
    it is gone, as (type, summary template over the value and its `key`), and what to say when it changed."""

    new: tuple[str, str] | None = None
    gone: tuple[str, str] | None = None
    changed: Callable[[_Events, Seen, dict[str, Any]], None] | None = None
    named: bool = False  # its events carry `name` (the key), as subdomain events do


KINDS: dict[str, Kind] = {
    "subdomain": Kind(
        new=("subdomain.new", "New subdomain {key}"),
        gone=("subdomain.gone", "Subdomain {key} is gone"),
        changed=_dns_changed,
        named=True,
    ),
    "port": Kind(
        new=("port.opened", "Port {port} opened on {host}"), gone=("port.closed", "Port {port} closed on {host}")
    ),
    "service": Kind(new=("service.new", "New web service {url} ({status})"), changed=_service_changed),
    "cert": Kind(changed=_cert_changed),
    "js": Kind(new=("js.new", "New script {key}")),
    "secret": Kind(new=("secret.new", "New {rule} secret in {url}")),
    "takeover": Kind(new=("takeover.candidate", "{key} points at {cname}, which is unclaimed ({provider})")),
}


def _describe(events: _Events, kind: str, key: str, value: dict[str, Any], when: str) -> None:
    """The `new` or `gone` event of an observation, if its kind has one."""
    spec = KINDS[kind]
    described = spec.new if when == "new" else spec.gone
    if described is None:
        return
    event_type, template = described
    data: dict[str, Any] = {"name": key} if spec.named else {}
    data["after" if when == "new" else "before"] = value
    events.add(event_type, template.format_map({**value, "key": key}), **data)


def _expiring(events: _Events, item: Seen, row: Observation | None, now: datetime, days: int) -> bool:
    """A cert.expiring event once per certificate that expires within `days`."""
    if item.kind != "cert" or not item.value.get("not_after"):
        return False
    if row is not None and row.value.get("expiring_notified") == item.value["fingerprint_sha256"]:
        return False
    try:
        not_after = datetime.fromisoformat(item.value["not_after"])
    except ValueError:
        return False
    not_after = aware(not_after)
    if not_after - now > timedelta(days=days):
        return False
    left = (not_after - now).days
    when = f"in {left} days" if left >= 0 else f"{-left} days ago"
    events.add("cert.expiring", f"The certificate of {item.value['url']} expires {when}", after=item.value)
    return True


def detect(scan_id: str, now: datetime | None = None) -> list[int]:
    """Compare a finished scan with the target's observations; store and return new event ids."""
    settings = get_settings()
    now = now or utcnow()
    with session_scope() as session:
        scan = session.get(Scan, scan_id)
        if scan is None or scan.target_id is None or not scan.result:
            return []
        # One comparison per target at a time: two scans finishing together must not both count a miss
        # from the same starting point (PostgreSQL would let them; SQLite serialises writers anyway).
        target = session.exec(select(Target).where(Target.id == scan.target_id).with_for_update()).first()
        if target is None:
            return []
        document = scan.result
        events = _Events(target.id, target.name, scan.id)
        rows = session.exec(select(Observation).where(Observation.target_id == target.id)).all()
        existing = {(o.kind, o.key): o for o in rows}
        baseline = not any(o.first_scan_id for o in rows)  # imported assets alone do not make a history
        seen = observe(document)
        current = {(s.kind, s.key) for s in seen}
        for item in _unique(seen):
            row = existing.get((item.kind, item.key))
            value = dict(item.value)
            if not baseline and _expiring(events, item, row, now, settings.cert_expiring_days):
                value["expiring_notified"] = item.value["fingerprint_sha256"]
            elif row is not None and row.value.get("expiring_notified") and item.kind == "cert":
                value["expiring_notified"] = row.value["expiring_notified"]
            if row is None:
                if not baseline:
                    _describe(events, item.kind, item.key, item.value, "new")
                session.add(
                    Observation(
                        target_id=target.id,
                        kind=item.kind,
                        key=item.key[:1000],
                        value=value,
                        first_scan_id=scan.id,
                        last_scan_id=scan.id,
                    )
                )
                continue
            changed = KINDS[item.kind].changed
            if not row.present:
                _describe(events, item.kind, item.key, item.value, "new")  # it was gone and came back
            elif not baseline and changed is not None:
                changed(events, item, row.value)
            row.value, row.present, row.missing_runs = value, True, 0
            row.last_scan_id, row.updated_at = scan.id, now
            session.add(row)
        looked = _looked_at(scan, document)
        for (kind, key), row in existing.items():
            if (kind, key) in current or not row.present or kind not in looked:
                continue
            row.missing_runs += 1
            if row.missing_runs >= settings.gone_after_missing_runs:
                row.present = False
                _describe(events, row.kind, row.key, row.value, "gone")
            row.updated_at = now
            session.add(row)
        if baseline:
            counts = {k: v for k, v in (scan.counts or {}).items() if v}
            what = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()) or "nothing yet"
            events.add("scan.baseline", f"First scan: {what}", counts=counts)
        for event in events.rows:
            event.created_at = now
            session.add(event)
        session.flush()
        return [e.id for e in events.rows if e.id is not None]


def _unique(items: Iterable[Seen]) -> list[Seen]:
    out: dict[tuple[str, str], Seen] = {}
    for item in items:
        out.setdefault((item.kind, item.key), item)
    return list(out.values())
