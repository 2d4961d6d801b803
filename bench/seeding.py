"""Rows for a big target, shared by the benches that seed a database directly (bulk inserts)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

PORT_NUMBERS = (22, 80, 443, 8080, 8443)


def observation_rows(
    target_id: int,
    scan_ids: list[str],
    now: datetime,
    *,
    subdomains: int,
    ports: int,
    services: int,
    scripts: int,
    domain: str,
    address: Callable[[int], str],
    issuer: str,
) -> list[dict]:
    """Subdomains, open ports (five per host), web services with certificates and scripts; 2% gone."""

    def obs(kind: str, key: str, value: dict, i: int) -> dict:
        return {
            "target_id": target_id,
            "kind": kind,
            "key": key,
            "value": value,
            "present": i % 50 != 7,
            "missing_runs": 0,
            "first_scan_id": scan_ids[i % len(scan_ids)],
            "last_scan_id": scan_ids[-1],
            "updated_at": now - timedelta(seconds=i),
        }

    rows = [obs("subdomain", f"host-{i}.{domain}", {"addresses": [address(i)]}, i) for i in range(subdomains)]
    for i in range(ports):
        host, port = address(i // len(PORT_NUMBERS)), PORT_NUMBERS[i % len(PORT_NUMBERS)]
        rows.append(obs("port", f"{host}:{port}", {"host": host, "port": port}, i))
    for i in range(services):
        url = f"https://host-{i}.{domain}/"
        value = {"url": url, "host": address(i), "port": 443, "status": 200, "title": f"Portal {i}"}
        rows.append(obs("service", url, value | {"server": "nginx", "technologies": ["nginx", "React"]}, i))
        cert = {"fingerprint_sha256": f"{i:064x}", "not_after": "2030-01-01T00:00:00+00:00", "issuer": issuer}
        rows.append(obs("cert", url, cert | {"url": url}, i))
    rows += [obs("js", f"https://host-{i}.{domain}/static/app-{i}.js", {}, i) for i in range(scripts)]
    return rows
