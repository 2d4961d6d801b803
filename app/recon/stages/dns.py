"""DNS records of the target's root domains: MX, NS, TXT (SPF, verification tokens), and A/AAAA/CNAME."""

from __future__ import annotations

from app.recon.stage import ScanRun, Stage
from app.scanners import dns


async def run(scan: ScanRun) -> None:
    state = scan.state
    if scan.resolver is None:
        return
    domains = state.scope.domains
    report = scan.reporter(lambda done, total: f"Looking up DNS records: {done:,} of {total:,} root domains")
    for index, domain in enumerate(domains):
        report(index, len(domains))
        found = await dns.records(scan.resolver, domain, warnings=state.warnings)
        state.records[domain] = {rdtype: values for rdtype, values in found.items() if values}
    report(len(domains), len(domains))


STAGE = Stage(
    name="dns",
    module="dns",
    # (Every scan resolves its names and flags dangling CNAMEs, in the resolve stage, whatever its modules.)
    help="MX, NS, TXT (and A, AAAA, CNAME) records of the root domains",
    after=("resolve",),
    weight=5,
    run=run,
)
