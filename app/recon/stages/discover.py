"""Subdomains of the target's domains: certificate transparency, then a wildcard-aware DNS brute force."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from app.errors import CTError, DNSFailure, ScanError
from app.recon.stage import Option, ScanRun, Stage, some
from app.scanners import ct, dns


def check_ct_url(url: Any) -> str:
    try:
        scheme = urlsplit(url).scheme if isinstance(url, str) and url.isprintable() else ""
    except ValueError:  # e.g. an unclosed [ in the host
        scheme = ""
    if "{domain}" not in str(url) or scheme not in ("http", "https"):
        raise ScanError("'ct_url' must be an http(s) URL template containing {domain}")
    return url


async def run(scan: ScanRun) -> None:
    state = scan.state
    domains = state.scope.domains
    labels = dns.load_wordlist(scan.settings.wordlist_file)
    scan.log(
        f"Discovering subdomains of {some(domains)}: certificate transparency "
        f"and a brute force of {len(labels):,} words"
    )
    for index, domain in enumerate(domains):
        report = scan.reporter(
            lambda done, total, d=domain: f"Brute-forcing {d}: {done:,} of {total:,} names", index, len(domains)
        )
        scan.say(f"Searching certificate transparency for {domain}")
        try:
            for name in await ct.subdomains(domain, url_template=scan.options.get("ct_url")):
                state.add_name(name, "ct")
        except CTError as exc:
            state.warnings.append(str(exc))
        if scan.resolver is None:
            continue
        try:
            found, wildcards = await dns.brute_force(scan.resolver, domain, labels, report, warnings=state.warnings)
        except DNSFailure as exc:
            state.warnings.append(f"brute force of {domain} stopped: {exc}")
            continue
        for name in found:
            state.add_name(name, "bruteforce")
        state.wildcards.extend(w for w in wildcards if w not in state.wildcards)


def summary(scan: ScanRun) -> str:
    state = scan.state
    sources = Counter(source for found in state.names.values() for source in found)
    line = (
        f"Subdomains: {len(state.names):,} names from CT and brute force "
        f"({sources['ct']:,} from CT, {sources['bruteforce']:,} from brute force)"
    )
    if state.wildcards:
        line += f"; wildcard zones: {some(state.wildcards)}"
    return line


STAGE = Stage(
    name="discover",
    module="subdomains",
    help="subdomains from certificate transparency (CT_URL) and a DNS brute force of the wordlist",
    weight=20,
    options={"ct_url": Option(check_ct_url, "a CT search URL template with {domain} (crt.sh's JSON format)")},
    run=run,
    summary=summary,
)
