"""HTTP probing: what answers on a host's web ports (probe.py), and what it is (fingerprint.py).

services, warnings = await probe([ProbeTarget("192.0.2.10", 443, "www.example.com")])
"""

from app.scanners.http.fingerprint import (
    TECHNOLOGIES_FILE,
    Technology,
    TlsInfo,
    detect_technologies,
    favicon_hash,
    load_technologies,
    page_title,
    tls_info,
)
from app.scanners.http.probe import ProbeTarget, Service, probe
from app.scanners.http.takeover import confirm, confirm_many

__all__ = [
    "TECHNOLOGIES_FILE",
    "ProbeTarget",
    "Service",
    "Technology",
    "TlsInfo",
    "confirm",
    "confirm_many",
    "detect_technologies",
    "favicon_hash",
    "load_technologies",
    "page_title",
    "probe",
    "tls_info",
]
