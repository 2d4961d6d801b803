"""Secret scanning: credentials in JavaScript, HTML, JSON and source maps, found fast and shown redacted.

    make_matcher() -> Matcher          the shipped rules (rules.d/, each with its examples) + the user's
    scan_paths(paths) -> ScanReport    files and directories (inputs.py: bounded, decompressed with caps)

A web target's scripts, chunks and source maps: webscan.scan_url(url) (discovery.py; stored findings).

The modules, one job each: rules (rules as data, checked against their examples), public (values public
by design), proofs (checksums and envelopes that raise confidence) and webtokens (JWT claims), engine
(Hyperscan candidates, exact regexes, quiet filters, masked context), inputs, sourcemap, snippets
(redacted context), discovery and links (what a page loads and refers to), scan, webscan, store
(findings and sightings), sealing (values encrypted at rest), triage (verdicts by fingerprint), verify
and verified (live checks with the provider), report (text, JSON, SARIF).
"""

from app.secrets.engine import Finding, Matcher, redact
from app.secrets.scan import ScanReport, make_matcher, scan_paths

__all__ = ["Finding", "Matcher", "ScanReport", "make_matcher", "redact", "scan_paths"]
