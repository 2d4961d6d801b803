"""Scanners: the network-facing probes, each bounded in time, size and concurrency, each taking its
endpoints from the settings (or its arguments), none of them knowing about targets, jobs or storage.

    dns/         resolver transport, bulk lookups, wildcard-aware brute force, takeover hints
    ct.py        subdomains from certificate transparency (a crt.sh-style JSON search)
    portspec.py  "80,443,8000-8100" / "top100" -> ports
    ports.py     a TCP connect scanner
    http/        what answers on web ports (probe.py) and what it is (fingerprint.py)
"""
