"""The recon lab: an organisation on loopback that a scan must map exactly.

    zone lab.test, served by an authoritative DNS server on 127.0.0.1
      lab.test         A 127.0.0.15  (no services)      MX/TXT/NS records
      www              A 127.0.0.10  web app: a page, webpack chunks, a source map, planted fake credentials
      api              A 127.0.0.11  JSON API, plus an extra non-web open port
      legacy-ct        A 127.0.0.11  found only through certificate transparency
      app              A 127.0.0.12  HTTPS with a lab certificate naming app and portal-x9
      portal-x9        A 127.0.0.12  found only through that certificate's SANs
      mail             A 127.0.0.14  nothing open
      dangling         CNAME ghost-app.herokuapp.com (which does not exist): a takeover candidate
      *.wild           A 127.0.0.99  a wildcard zone
      excluded         A 127.0.0.13  out of scope: must never be contacted
    a fake crt.sh on 127.0.0.1, and a small brute-force wordlist.

Every server binds its own 127.0.0.x address on a free port; the scan's port and http_ports options
name exactly those ports. Loopback only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import random
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.dnslab import DNSLab
from tests.support.tlslab import LabSite, make_cert
from tests.support.weblab import LabServer, Planted, build_js_site

WORDS = ["www", "api", "app", "mail", "dangling", "excluded", "wild", "vpn", "intranet", "staging"]
# Every name a scan of the lab reports (excluded.lab.test is out of scope).
NAMES = frozenset(
    {
        "lab.test",
        "www.lab.test",
        "api.lab.test",
        "legacy-ct.lab.test",
        "app.lab.test",
        "portal-x9.lab.test",
        "mail.lab.test",
        "dangling.lab.test",
        "wild.lab.test",
    }
)


def close_listener(sock: socket.socket) -> None:
    """Stop listening now. close() alone leaves the socket listening while a thread sits in accept() on it
    (Linux): the next connection, e.g. a later test's scan probe, would still be taken."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() with EINVAL
    sock.close()


class Listener:
    """A bare TCP port that accepts and closes: an open, non-web port. Counts connections."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError as exc:
                if self.sock.fileno() == -1 or exc.errno == errno.EINVAL:
                    return  # stopped (close_listener)
                continue  # a connection reset before it was accepted (scanners close fast): keep listening
            self.accepted += 1
            conn.close()

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        close_listener(self.sock)


@dataclass
class ReconLab:
    wordlist: Path
    dns: DNSLab = field(init=False)
    planted: list[Planted] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(5)
        self.web = LabServer("127.0.0.10").start()
        self.offsite = LabServer("127.0.0.20").start()  # off-site script host: no DNS name, never fetched
        self.planted = build_js_site(self.web, self.offsite, rng)
        self.api = LabServer("127.0.0.11").start()
        self.api.add("/", json.dumps({"service": "lab api", "ok": True}), content_type="application/json")
        self.extra = Listener("127.0.0.11").start()
        self.tls = LabSite("127.0.0.12", make_cert(["app.lab.test", "portal-x9.lab.test"])).start()
        self.tls.add(
            "/", "<html><head><title>Lab portal</title></head><body>hi</body></html>", content_type="text/html"
        )
        self.excluded = Listener("127.0.0.13").start()
        self.ct = LabServer("127.0.0.1").start()
        self.ct.add(
            "/ct",
            json.dumps(
                [
                    {"name_value": "www.lab.test\n*.lab.test", "common_name": "www.lab.test"},
                    {"name_value": "legacy-ct.lab.test", "common_name": "legacy-ct.lab.test"},
                    {"name_value": "api.lab.test", "common_name": "api.lab.test"},
                ]
            ),
            content_type="application/json",
        )
        self.dns = DNSLab(
            "lab.test",
            {
                "@": {"A": ["127.0.0.15"], "MX": ["10 mail.lab.test"], "TXT": ["v=spf1 -all"], "NS": ["ns1.lab.test"]},
                "ns1": {"A": ["127.0.0.1"]},
                "www": {"A": ["127.0.0.10"]},
                "api": {"A": ["127.0.0.11"]},
                "legacy-ct": {"A": ["127.0.0.11"]},
                "app": {"A": ["127.0.0.12"]},
                "portal-x9": {"A": ["127.0.0.12"]},
                "mail": {"A": ["127.0.0.14"]},
                "dangling": {"CNAME": ["ghost-app.herokuapp.com"]},
                "*.wild": {"A": ["127.0.0.99"]},
                "excluded": {"A": ["127.0.0.13"]},
            },
        ).start()
        self.wordlist.write_text("\n".join(WORDS) + "\n")

    @property
    def web_ports(self) -> list[int]:
        return sorted({self.web.port, self.api.port, self.tls.port})

    @property
    def ports_spec(self) -> str:
        return ",".join(str(p) for p in sorted({*self.web_ports, self.extra.port, self.excluded.port}))

    def target(self) -> dict:
        """The body of POST /api/v1/targets for the lab."""
        return {
            "name": "lab",
            "domains": ["lab.test"],
            "scope": {"exclude": ["excluded.lab.test", "127.0.0.13"]},
            "scan_options": {
                "resolvers": [self.dns.address],
                "ct_url": f"{self.ct.url}/ct?q=%25.{{domain}}",
                "ports": self.ports_spec,
                "http_ports": self.web_ports,
            },
        }

    def env(self) -> dict[str, str]:
        return {"WORDLIST_FILE": str(self.wordlist), "HTTP_TIMEOUT_SECONDS": "5", "DNS_TIMEOUT_SECONDS": "1"}

    def stop(self) -> None:
        for server in (self.web, self.offsite, self.api, self.extra, self.tls, self.excluded, self.ct, self.dns):
            server.stop()
