"""What a scan knows so far: the names, addresses, ports, services and secrets its stages found, and the
result document it is written as (the same in the API, the CLI and the scan page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.net.names import address_key, is_address
from app.recon.scope import Scope


@dataclass
class State:
    scope: Scope
    names: dict[str, set[str]] = field(default_factory=dict)  # name -> sources
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> resolution
    records: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # root domain -> MX/NS/TXT...
    wildcards: list[str] = field(default_factory=list)
    addresses: dict[str, set[str]] = field(default_factory=dict)  # address -> names
    open_ports: dict[str, list[int]] = field(default_factory=dict)
    scanned_ports: set[int] = field(default_factory=set)
    services: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)  # exposure check findings (stages/checks.py)
    js_files: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def add_name(self, name: str, source: str) -> bool:
        """Record a name found by `source` if it is in scope; True when it is new."""
        name = name.lower().rstrip(".")
        # Certificates name IP addresses too (IP SANs); those are hosts, not subdomains.
        if is_address(name) or not self.scope.name_in_scope(name):
            return False
        new = name not in self.names
        self.names.setdefault(name, set()).add(source)
        return new

    def pin(self, host: str) -> str | None:
        """Where a web request for `host` may connect: an in-scope address this scan resolved."""
        host = host.lower().strip("[]").rstrip(".")
        if is_address(host):
            return host if host in self.addresses else None
        for address, names in self.addresses.items():
            if host in names:
                return address
        return None

    def hosts(self) -> list[str]:
        """The addresses in scope, in address order."""
        return sorted(self.addresses, key=address_key)

    def document(self, target: str) -> dict[str, Any]:
        """The result, the same in the API and the CLI."""
        subdomains = []
        for name in sorted(self.names):
            answer = self.answers.get(name, {})
            entry: dict[str, Any] = {
                "name": name,
                "addresses": answer.get("addresses", []),
                "sources": sorted(self.names[name]),
            }
            if answer.get("cname"):
                entry["cname"] = answer["cname"]
            if answer.get("takeover"):
                entry["takeover"] = answer["takeover"]
                entry["takeover_evidence"] = answer.get("takeover_evidence", {})
            if name in self.records:
                entry["records"] = self.records[name]
            subdomains.append(entry)
        hosts = [
            {"host": address, "names": sorted(self.addresses[address]), "open_ports": self.open_ports.get(address, [])}
            for address in self.hosts()
        ]
        return {
            "target": target,
            "subdomains": subdomains,
            "wildcards": sorted(self.wildcards),
            "hosts": hosts,
            "services": sorted(self.services, key=lambda s: (s["url"], s.get("host", ""))),
            "secrets": self.secrets,
            "checks": sorted(self.checks, key=lambda c: (c["url"], c["check"])),
            "js_files": sorted(self.js_files),
            "warnings": self.warnings,
        }
