"""HTTP probing against the loopback lab: real HTTP and HTTPS servers on several 127.0.0.x addresses,
and servers that misbehave on purpose. No traffic leaves 127.0.0.0/8: the probe always connects to
the target's IP, whatever names appear in URLs."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import socket
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import brotli
import mmh3
import pytest

from app.scanners.http import (
    ProbeTarget,
    Service,
    detect_technologies,
    load_technologies,
    page_title,
    probe,
)
from tests.support.tlslab import (
    LAB_NAMES,
    Garbage,
    HugeBody,
    LabCert,
    LabSite,
    RawServer,
    RedirectLoop,
    SlowLoris,
    make_cert,
)

HANG = 30  # seconds before a probe counts as hung: a bound on hangs, not a timing assertion
AGENT = "AssetMon-test/1"
FAST = {"timeout": 1.5, "concurrency": 8, "max_body": 256 << 10, "max_redirects": 5, "verify_tls": False}


def run(targets: list[ProbeTarget], **options) -> tuple[list[Service], list[str]]:
    return asyncio.run(asyncio.wait_for(probe(targets, **{**FAST, "user_agent": AGENT, **options}), HANG))


@pytest.fixture(scope="module")
def cert() -> LabCert:
    return make_cert(LAB_NAMES)


@pytest.fixture
def lab() -> Iterator[Callable]:
    """Start servers for one test; all are stopped after it."""
    started: list[LabSite | RawServer] = []

    def start(server):
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def test_https_and_http_on_several_addresses_with_host_and_sni(lab, cert):
    a = lab(LabSite("127.0.0.41", cert))
    b = lab(LabSite("127.0.0.42", cert))  # the same name on a second address
    plain = lab(LabSite("127.0.0.43"))
    a.add("/", "<title>Lab A</title>", server="nginx")
    b.add("/", "<title>Lab B</title>", server="nginx")
    plain.add("/", "<title>Plain</title>")
    calls: list[tuple[int, int]] = []
    targets = [
        ProbeTarget("127.0.0.41", a.port, "lab.test"),
        ProbeTarget("127.0.0.42", b.port, "lab.test"),
        ProbeTarget("127.0.0.41", a.port, "api.lab.test"),
        ProbeTarget("127.0.0.43", plain.port, None),
        ProbeTarget("127.0.0.43", plain.port, "www.lab.test"),
        ProbeTarget("127.0.0.41", a.port, "lab.test"),  # a duplicate: probed once
    ]

    services, warnings = run(targets, progress=lambda done, total: calls.append((done, total)))

    # An HTTPS-only port fails over plain HTTP and vice versa: expected, not worth a warning.
    assert warnings == []
    assert [(s.url, s.host, s.scheme, s.title) for s in services] == [
        (f"https://lab.test:{a.port}/", "127.0.0.41", "https", "Lab A"),
        (f"https://lab.test:{b.port}/", "127.0.0.42", "https", "Lab B"),
        (f"https://api.lab.test:{a.port}/", "127.0.0.41", "https", "Lab A"),
        (f"http://127.0.0.43:{plain.port}/", "127.0.0.43", "http", "Plain"),
        (f"http://www.lab.test:{plain.port}/", "127.0.0.43", "http", "Plain"),
    ]

    # The servers saw the name in the Host header and as the TLS server name.
    def pages(site: LabSite) -> set[tuple[str | None, str | None, str]]:
        return {(s.host, s.sni, s.scheme) for s in site.seen if s.path == "/"}

    assert pages(a) == {
        (f"lab.test:{a.port}", "lab.test", "https"),
        (f"api.lab.test:{a.port}", "api.lab.test", "https"),
    }
    assert pages(b) == {(f"lab.test:{b.port}", "lab.test", "https")}
    assert pages(plain) == {(f"127.0.0.43:{plain.port}", None, "http"), (f"www.lab.test:{plain.port}", None, "http")}
    assert {s.user_agent for site in (a, b, plain) for s in site.seen} == {AGENT}
    assert calls[0] == (0, 5) and calls[-1] == (5, 5) and [d for d, _ in calls] == list(range(6))

    tls = services[0].tls
    assert tls is not None and services[3].tls is None
    assert tls.subject_cn == "lab.test"
    assert tls.sans == list(LAB_NAMES)
    assert tls.issuer == "CN=AssetMon Lab CA"
    assert tls.fingerprint_sha256 == cert.fingerprint_sha256
    assert not tls.expired and not tls.self_signed
    assert datetime.fromisoformat(tls.not_before) < datetime.now(UTC) < datetime.fromisoformat(tls.not_after)

    shape = services[0].as_dict()
    assert list(shape) == [
        "url", "host", "port", "scheme", "hostname", "status", "title", "server", "content_type", "content_length",
        "truncated", "redirects", "location", "tls", "favicon_hash", "technologies", "body_hash",
    ]  # fmt: skip
    assert set(shape["tls"]) == {
        "subject_cn", "sans", "issuer", "not_before", "not_after", "expired", "self_signed", "fingerprint_sha256",
    }  # fmt: skip


def test_page_fields_favicons_and_technologies(lab, cert):
    icon = bytes(range(256)) * 9  # base64 of it spans several 76-character lines, as Shodan hashes it
    page = (
        "<!doctype html><html><head>\n"
        '<meta charset="utf-8"><meta name="generator" content="WordPress 6.4.2">\n'
        "<title>\n   Welcome &amp; \x1b[31mhello\x07\u202e   w\u00f6rld\n</title>\n"
        '<link rel="preconnect" href="https://fonts.example.net">\n'
        '<link rel="shortcut icon" href="/static/fav.png?v=2">\n'
        "</head><body>" + "x" * 5000 + "</body></html>"
    ).encode()
    site = lab(LabSite("127.0.0.44", cert))
    site.add(
        "/",
        page,
        server="nginx/1.25.3",
        x_powered_by="PHP/8.2.12",
        set_cookie="PHPSESSID=0123; path=/",
        content_type="text/html; charset=utf-8",
    )
    site.add("/static/fav.png", icon, content_type="image/png")

    ico = lab(LabSite("127.0.0.45"))  # no <link>: /favicon.ico; the icon link points off the host
    ico.add("/", '<link rel=icon href="https://cdn.example.net/i.png"><title>ico</title>')
    ico.add("/favicon.ico", icon[:100], content_type="image/x-icon")
    none = lab(LabSite("127.0.0.46"))  # /favicon.ico is a 404
    none.add("/", "<title>none</title>")
    soft = lab(LabSite("127.0.0.47"))  # /favicon.ico is the site's HTML page (a "soft 404")
    soft.add("/", "<title>soft</title>")
    soft.add("/favicon.ico", "<!DOCTYPE html><html><title>soft</title></html>", content_type="text/html")

    services, warnings = run(
        [
            ProbeTarget("127.0.0.44", site.port, "lab.test"),
            ProbeTarget("127.0.0.45", ico.port),
            ProbeTarget("127.0.0.46", none.port),
            ProbeTarget("127.0.0.47", soft.port),
        ]
    )

    assert warnings == []
    main, from_ico, without, soft_404 = services
    assert main.title == "Welcome & [31mhello w\u00f6rld"  # escape and bidi control characters gone
    assert main.server == "nginx/1.25.3"
    assert main.content_type == "text/html; charset=utf-8"
    assert main.status == 200 and main.content_length == len(page) and not main.truncated
    assert main.body_hash == hashlib.sha256(page).hexdigest()
    assert main.technologies == ["PHP", "WordPress", "nginx"]
    assert main.favicon_hash == mmh3.hash(base64.encodebytes(icon))
    assert ("/static/fav.png?v=2", f"lab.test:{site.port}", "lab.test") in {(s.path, s.host, s.sni) for s in site.seen}
    assert from_ico.favicon_hash == mmh3.hash(base64.encodebytes(icon[:100]))
    assert without.favicon_hash is None and soft_404.favicon_hash is None


def test_titles_are_decoded_bounded_and_linear():
    assert page_title("<TITLE>caf\xe9</TITLE>".encode("latin-1"), "text/html; charset=ISO-8859-1") == "caf\u00e9"
    assert page_title(b'<meta charset="windows-1252"><title>\x93quoted\x94</title>') == "\u201cquoted\u201d"
    assert page_title(b"<title>" + b"long " * 1000) == ("long " * 60).strip()  # no </title>: capped at 300
    assert page_title(b"<html><body>no title</body></html>") is None
    assert page_title(b"<title>  \n </title>") is None
    hostile = b"<title" * 200_000 + b"<link" * 200_000  # unclosed tags: each scan stops at the tag cap
    assert page_title(hostile) is None
    assert detect_technologies([], hostile) == set()


def test_redirects_on_the_same_host_are_followed_by_ip(lab, cert):
    secure = lab(LabSite("127.0.0.48", cert))
    plain = lab(LabSite("127.0.0.48"))  # same address, other port: http -> https upgrade
    plain.add("/", "", status=301, location=f"https://lab.test:{secure.port}/", set_cookie="JSESSIONID=1")
    secure.add("/", "", status=302, location="/home")
    secure.add("/home", "<title>Home</title>", server="Caddy")
    away = lab(LabSite("127.0.0.49"))
    away.add("/", "", status=302, location="https://www.example.org/landing")  # another host: never followed
    sibling = lab(LabSite("127.0.0.50"))
    sibling.add("/", "", status=302, location="http://www.lab.test/")  # another name of the site: not this host

    services, warnings = run(
        [
            ProbeTarget("127.0.0.48", plain.port, "lab.test"),
            ProbeTarget("127.0.0.49", away.port, "lab.test"),
            ProbeTarget("127.0.0.50", sibling.port, "lab.test"),
        ]
    )

    assert warnings == []
    upgraded, offsite, other_name = services
    assert upgraded.url == f"http://lab.test:{plain.port}/"
    assert upgraded.redirects == [f"https://lab.test:{secure.port}/", f"https://lab.test:{secure.port}/home"]
    assert (upgraded.status, upgraded.title, upgraded.server, upgraded.location) == (200, "Home", "Caddy", None)
    assert upgraded.technologies == ["Caddy", "Java"]  # headers of every answer in the chain count
    assert upgraded.tls is None  # the port probed speaks plain HTTP
    assert {(s.path, s.host, s.sni) for s in secure.seen if s.path != "/favicon.ico"} == {
        ("/", f"lab.test:{secure.port}", "lab.test"),
        ("/home", f"lab.test:{secure.port}", "lab.test"),
    }
    assert (offsite.status, offsite.redirects, offsite.location) == (302, [], "https://www.example.org/landing")
    assert (other_name.status, other_name.redirects, other_name.location) == (302, [], "http://www.lab.test/")

    services, warnings = run([ProbeTarget("127.0.0.48", plain.port, "lab.test")], max_redirects=0)
    assert warnings == []
    assert (services[0].status, services[0].redirects) == (301, [])
    assert services[0].location == f"https://lab.test:{secure.port}/"


def test_redirect_loops_end_with_a_warning(lab, cert):
    endless = lab(RedirectLoop("127.0.0.51", cert, mode="endless"))
    loop = lab(RedirectLoop("127.0.0.52", mode="loop"))

    services, warnings = run(
        [ProbeTarget("127.0.0.51", endless.port, "lab.test"), ProbeTarget("127.0.0.52", loop.port)], max_redirects=3
    )

    forever, circle = services
    assert forever.status == 302
    assert forever.redirects == [f"https://lab.test:{endless.port}/r/{n}" for n in (1, 2, 3)]
    assert forever.location == f"https://lab.test:{endless.port}/r/4"
    assert circle.redirects == [f"http://127.0.0.52:{loop.port}/a"]
    assert circle.location == f"http://127.0.0.52:{loop.port}/"
    assert warnings == [
        f"lab.test (127.0.0.51:{endless.port}): more than 3 redirects; stopped before {forever.location}",
        f"127.0.0.52:{loop.port}: redirect loop: {circle.redirects[0]} redirects back to {circle.location}",
    ]


def test_slow_loris_servers_hit_the_overall_deadline(lab):
    # Each drips a byte every 0.1 s: no single read ever waits long enough for a per-read timeout.
    head = lab(SlowLoris("127.0.0.53", phase="headers"))
    body = lab(SlowLoris("127.0.0.54", phase="body"))
    handshake = lab(SlowLoris("127.0.0.55", phase="handshake"))

    services, warnings = run(
        [
            ProbeTarget("127.0.0.53", head.port),
            ProbeTarget("127.0.0.54", body.port),
            ProbeTarget("127.0.0.55", handshake.port, "lab.test"),
        ]
    )

    # The dripping body is kept as far as it got; the others never answered.
    assert [(s.host, s.scheme, s.status, s.title, s.truncated) for s in services] == [
        ("127.0.0.54", "http", 200, "Dripping", True)
    ]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"127.0.0.53:{head.port}: no HTTP answer")
    assert "no complete answer within 1.5 s" in warnings[0]
    assert warnings[1].startswith(f"127.0.0.54:{body.port}: http://127.0.0.54:{body.port}/: body not complete within")
    assert warnings[2].startswith(f"lab.test (127.0.0.55:{handshake.port}): no HTTP answer")


def test_huge_bodies_and_decompression_bombs_are_capped(lab):
    cap = 1 << 20
    huge = lab(HugeBody("127.0.0.56", size=200 << 20))
    bomb = lab(HugeBody("127.0.0.57", gzip=True))  # endless: about 1,000:1
    site = lab(LabSite("127.0.0.58"))
    site.add("/", brotli.compress(b"\0" * (32 << 20), quality=5), content_encoding="br")
    raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = lab(LabSite("127.0.0.59"))
    deflated.add(
        "/", raw_deflate.compress(b"<title>raw deflate</title>") + raw_deflate.flush(), content_encoding="deflate"
    )
    deflated.add("/favicon.ico", gzip.compress(b"ICON"), content_encoding="gzip", content_type="image/x-icon")

    tracemalloc.start()
    try:
        services, warnings = run(
            [ProbeTarget(s.host, s.port) for s in (huge, bomb, site, deflated)], max_body=cap, timeout=10
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert warnings == []
    assert peak < 32 << 20  # 200 MB, an endless bomb and a 32 MiB brotli body: a few caps' worth at most
    capped = hashlib.sha256(b"\0" * cap).hexdigest()
    plain, gz, br, small = services
    assert (plain.truncated, plain.content_length, plain.body_hash) == (True, 200 << 20, capped)
    assert huge.bytes_sent < huge.size  # we hung up
    assert (gz.truncated, gz.content_length, gz.body_hash) == (True, cap, capped)
    assert (br.truncated, br.body_hash) == (True, capped)
    assert (small.title, small.truncated, small.favicon_hash) == (
        "raw deflate",
        False,
        mmh3.hash(base64.encodebytes(b"ICON")),
    )


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def test_bad_tls_and_garbage_become_warnings(lab):
    expired = lab(LabSite("127.0.0.60", make_cert(["old.lab.test"], expired=True)))
    own = lab(LabSite("127.0.0.61", make_cert(["self.lab.test"], self_signed=True)))
    junk = lab(Garbage("127.0.0.62", mode="junk"))
    closing = lab(Garbage("127.0.0.62", mode="close"))
    alert = lab(Garbage("127.0.0.62", mode="alert"))
    silent = lab(Garbage("127.0.0.62", mode="silent"))
    closed = free_port("127.0.0.63")  # nothing listens: no service, and nothing worth a warning

    services, warnings = run(
        [
            ProbeTarget("127.0.0.60", expired.port, "old.lab.test"),
            ProbeTarget("127.0.0.61", own.port, "self.lab.test"),
            *(ProbeTarget("127.0.0.62", s.port, "lab.test") for s in (junk, closing, alert, silent)),
            ProbeTarget("127.0.0.63", closed, "lab.test"),
        ],
        timeout=1.0,
    )

    old, selfish = services
    assert old.tls is not None and old.tls.expired and not old.tls.self_signed
    assert selfish.tls is not None and selfish.tls.self_signed and not selfish.tls.expired
    assert selfish.tls.issuer == "CN=self.lab.test"
    assert [w.split(": ", 1)[0] for w in warnings] == [
        f"lab.test (127.0.0.62:{s.port})" for s in (junk, closing, alert, silent)
    ]
    assert all(": no HTTP answer (https: " in w and all(c.isprintable() for c in w) for w in warnings)
    assert "handshake failure" in warnings[2].lower()
    assert "no complete answer within 1 s" in warnings[3]

    # With verification on, the lab's private CA is not trusted: a warning, no service.
    secure = lab(LabSite("127.0.0.64", make_cert(["lab.test"])))
    services, warnings = run([ProbeTarget("127.0.0.64", secure.port, "lab.test")], verify_tls=True)
    assert services == []
    assert len(warnings) == 1 and "CERTIFICATE_VERIFY_FAILED" in warnings[0]


def test_a_port_may_speak_both_or_point_plain_clients_to_tls(lab, cert):
    both = lab(LabSite("127.0.0.65", cert, plain="serve"))
    both.add("/", "<title>Both</title>")
    nginx = lab(LabSite("127.0.0.66", cert, plain="reject"))
    nginx.add("/", "<title>TLS only</title>", server="nginx")

    services, warnings = run(
        [ProbeTarget("127.0.0.65", both.port, "lab.test"), ProbeTarget("127.0.0.66", nginx.port, "lab.test")]
    )

    assert warnings == []
    assert [(s.scheme, s.host, s.title) for s in services] == [
        ("https", "127.0.0.65", "Both"),
        ("http", "127.0.0.65", "Both"),
        ("https", "127.0.0.66", "TLS only"),  # nginx's "400 plain HTTP sent to HTTPS port" is not a second service
    ]


def test_progress_can_stop_the_probe_and_its_connections_close(lab):
    # Stuck in the TLS handshake over https (httpcore itself leaves that socket open when cancelled)
    # and in the status line over http.
    slow = lab(SlowLoris("127.0.0.67", phase="handshake", interval=0.05))
    quick = lab(LabSite("127.0.0.68"))
    quick.add("/", "<title>quick</title>", delay=0.3)  # the slow server is surely connected by then

    class Cancelled(Exception):
        pass

    def progress(done: int, total: int) -> None:
        if done:
            raise Cancelled

    targets = [ProbeTarget("127.0.0.67", slow.port), ProbeTarget("127.0.0.68", quick.port)]
    with pytest.raises(Cancelled):
        run(targets, timeout=20, progress=progress)
    assert slow.connections >= 1
    deadline = time.monotonic() + 10  # a bound on waiting, not a timing assertion
    while slow.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.open == 0  # the probe hung up on the dripping server

    def stop_at_once(done: int, total: int) -> None:
        raise Cancelled

    connections = slow.connections
    with pytest.raises(Cancelled):
        run(targets, progress=stop_at_once)
    assert slow.connections == connections  # nothing was sent


def test_invalid_targets_are_warnings_not_errors():
    services, warnings = run(
        [ProbeTarget("not-an-ip", 80), ProbeTarget("127.0.0.1", 0), ProbeTarget("127.0.0.1", 80, "bad name!")]
    )
    assert services == []
    assert [w.split(": not probed: ")[1] for w in warnings] == [
        "'not-an-ip' does not appear to be an IPv4 or IPv6 address",
        "port 0 is out of range",
        "'bad name!' is not a valid host name",
    ]


def test_options_default_to_settings(lab, monkeypatch):
    from app.settings import get_settings

    site = lab(LabSite("127.0.0.69"))
    site.add("/", "<title>defaults</title>")
    monkeypatch.setenv("HTTP_USER_AGENT", "from-settings/2")
    get_settings.cache_clear()
    try:
        services, warnings = asyncio.run(asyncio.wait_for(probe([ProbeTarget("127.0.0.69", site.port)]), HANG))
    finally:
        get_settings.cache_clear()
    assert [s.title for s in services] == ["defaults"] and warnings == []
    assert {s.user_agent for s in site.seen} == {"from-settings/2"}


# --- technologies: every rule's own examples ---------------------------------------------------------

EXAMPLES = [(tech, example) for tech in load_technologies() for example in tech.examples]


def test_technology_rules_are_well_formed():
    techs = load_technologies()
    names = [t.name for t in techs]
    assert 35 <= len(techs) <= 50 and len(set(names)) == len(names)
    assert all(t.examples for t in techs), [t.name for t in techs if not t.examples]
    assert all(set(e) <= {"headers", "body", "also"} for _, e in EXAMPLES)


@pytest.mark.parametrize(("tech", "example"), EXAMPLES, ids=[f"{t.name}-{t.examples.index(e)}" for t, e in EXAMPLES])
def test_each_technology_example_is_detected_alone(tech, example):
    headers = list(example.get("headers", {}).items())
    found = detect_technologies(headers, example.get("body", "").encode())
    assert found == {tech.name, *example.get("also", [])}


def test_an_ordinary_page_names_no_technology():
    page = b"<!doctype html><html><head><title>Hello</title><script src=/app.js></script></head><body></body></html>"
    headers = [("content-type", "text/html"), ("set-cookie", "session=1; path=/"), ("server", "lab")]
    assert detect_technologies(headers, page) == set()
