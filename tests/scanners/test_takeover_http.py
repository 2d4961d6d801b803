"""Subdomain takeover decided by the provider's HTTP answer, against loopback stand-ins of each edge.

Every provider of data/takeover.toml that has an HTTP fingerprint is asked once per answer in its own
examples: its unclaimed pages must be reported (with their evidence), what claimed sites serve must not.
One server plays every edge: the Host header asked for picks the answer, as a shared edge does.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.recon import stages
from app.recon.stage import ScanRun
from app.scanners import dns, http
from app.scanners.dns.takeover import TAKEOVER_FILE
from app.settings import Settings
from tests.support.dnslab import DNSLab
from tests.support.tlslab import LabSite, make_cert

RAW = tomllib.loads(TAKEOVER_FILE.read_text(encoding="utf-8"))["provider"]
HTTP_PROVIDERS = {p.name: p for p in dns.takeover.all_takeover_providers() if p.http is not None}
REQUIRED = {
    "AWS S3", "AWS CloudFront", "GitHub Pages", "Heroku", "Microsoft Azure", "Azure Blob Storage", "Fastly",
    "Shopify", "Netlify", "Vercel", "Zendesk", "Ghost", "Surge.sh", "Bitbucket", "Pantheon", "Tumblr",
    "WordPress.com", "Webflow", "Unbounce", "Readme.io", "Help Scout", "Agile CRM", "Fly.io",
}  # fmt: skip


def _answer(example, status: int) -> tuple[int, dict[str, str], bytes]:
    if isinstance(example, str):
        return status, {"Content-Type": "text/html"}, example.encode()
    return int(example.get("status", status)), dict(example.get("headers", {})), example.get("body", "").encode()


def _cases() -> list[tuple[str, str, int, tuple[int, dict[str, str], bytes]]]:
    """(host, provider, expected "vulnerable" 1 / 0, answer) for every example of every HTTP provider."""
    cases = []
    for index, entry in enumerate(RAW):
        if "http" not in entry:
            continue
        status = (entry["http"].get("status") or [200])[0]
        for kind, vulnerable in (("http_examples", 1), ("http_not_examples", 0)):
            for number, example in enumerate(entry[kind]):
                host = f"p{index}-{kind[5]}{number}.lab.test"
                cases.append((host, entry["name"], vulnerable, _answer(example, status)))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def edge() -> Iterator[int]:
    answers = {host: answer for host, _, _, answer in CASES}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, headers, body = answers.get((self.headers.get("Host") or "").split(":")[0], (421, {}, b"?"))
            self.send_response_only(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_table_covers_the_providers_people_ask_about() -> None:
    names = {p.name for p in dns.takeover.all_takeover_providers()}
    assert names >= REQUIRED, REQUIRED - names
    for provider in HTTP_PROVIDERS.values():
        entry = next(e for e in RAW if e["name"] == provider.name)
        assert entry["http_examples"] and entry["http_not_examples"], provider.name


def test_each_unclaimed_page_is_a_takeover_and_each_claimed_site_is_not(edge: int) -> None:
    # https goes to a closed port (that half fails: "unknown"), http to the edge: one answer decides.
    ports = {"https": _closed_port(), "http": edge}
    items = [(host, HTTP_PROVIDERS[name], f"x.{name}") for host, name, _, _ in CASES]
    verdicts = asyncio.run(http.confirm_many(items, pin=lambda host: "127.0.0.1", ports=ports, timeout=5))
    wrong = []
    for (host, name, vulnerable, answer), verdict in zip(CASES, verdicts, strict=True):
        if verdict.vulnerable != bool(vulnerable):
            wrong.append((name, host, verdict.verdict, verdict.reason))
        if vulnerable:
            assert verdict.method == "http" and verdict.matched and verdict.url == f"http://{host}:{edge}/"
            assert verdict.verdict == HTTP_PROVIDERS[name].confidence
            assert len(verdict.excerpt.encode()) <= 512
        else:  # an error or a redirect of the edge proves nothing either way
            status = answer[0]
            expected = "unknown" if status >= 500 or status in (301, 302, 303, 307, 308) else "not vulnerable"
            assert verdict.verdict == expected, (name, verdict)
    assert wrong == []
    assert len({name for _, name, _, _ in CASES}) == len(HTTP_PROVIDERS)


def test_the_name_is_asked_for_over_https_with_its_server_name() -> None:
    provider = HTTP_PROVIDERS["GitHub Pages"]
    site = LabSite("127.0.0.1", make_cert(["docs.lab.test"])).start()
    try:
        site.add("/", "<p><strong>There isn't a GitHub Pages site here.</strong></p>", status=404)
        ports = {"https": site.port, "http": _closed_port()}
        verdict = asyncio.run(http.confirm("docs.lab.test", provider, pin=lambda host: "127.0.0.1", ports=ports))
    finally:
        site.stop()
    assert verdict.verdict == "confirmed" and verdict.url == f"https://docs.lab.test:{site.port}/"
    assert [(s.host, s.sni) for s in site.seen] == [(f"docs.lab.test:{site.port}", "docs.lab.test")]


def test_no_answer_is_unknown_and_nothing_is_sent_without_a_pinned_address() -> None:
    provider = HTTP_PROVIDERS["Heroku"]
    ports = {"https": _closed_port(), "http": _closed_port()}
    refused = asyncio.run(http.confirm("app.lab.test", provider, pin=lambda host: "127.0.0.1", ports=ports))
    assert refused.verdict == "unknown" and "http://app.lab.test" in refused.reason
    unpinned = asyncio.run(http.confirm("app.lab.test", provider, pin=lambda host: None, ports=ports))
    assert unpinned.verdict == "unknown"
    hostile = asyncio.run(http.confirm("bad host\n", provider, pin=lambda host: "127.0.0.1", ports=ports))
    assert hostile.verdict == "unknown" and "\n" not in hostile.reason


def test_a_scan_reports_an_http_takeover_with_its_evidence_and_not_a_claimed_site(edge: int) -> None:
    """Through the recon stage helper: a name whose CNAME leads to an unclaimed GitHub Pages name (the
    lab edge serves its page) is a takeover; one whose target the edge serves a shop for is not; an
    out-of-scope address is never asked."""
    unclaimed = next(h for h, name, vulnerable, _ in CASES if name == "GitHub Pages" and vulnerable)
    claimed = next(h for h, name, vulnerable, _ in CASES if name == "Shopify" and not vulnerable)
    records = {
        unclaimed.removesuffix(".lab.test"): {"CNAME": ["lab-docs.github.io."]},
        claimed.removesuffix(".lab.test"): {"CNAME": ["lab-shop.myshopify.com."]},
        "elsewhere": {"CNAME": ["other.github.io."]},
        "lab-docs.github.io.": {"A": ["127.0.0.1"]},
        "lab-shop.myshopify.com.": {"A": ["127.0.0.1"]},
        "other.github.io.": {"A": ["127.0.0.9"]},
    }

    class Row:  # what ScanRun reads of a scan row
        id, target, target_id, modules, options = "x" * 32, "lab.test", None, ["subdomains"], {}
        spec = {"domains": ["lab.test"], "cidrs": [], "urls": [], "scope": {"exclude": ["127.0.0.9"]}}

    settings = Settings(takeover_http_port=edge, takeover_https_port=_closed_port(), takeover_timeout_seconds=5)
    names = [unclaimed, claimed, "elsewhere.lab.test"]
    with DNSLab("lab.test", records) as lab:
        run = ScanRun(Row(), settings, stages.plan(["subdomains"]))
        run.resolver = dns.Resolver([lab.address], timeout=1.0, retries=2, concurrency=10, max_records=100)
        answers = asyncio.run(run.resolve(names))
    assert {n for n, a in answers.items() if a.get("takeover")} == {unclaimed}
    evidence = answers[unclaimed]["takeover_evidence"]
    assert evidence["confidence"] == "confirmed" and evidence["method"] == "http"
    assert evidence["cname"] == "lab-docs.github.io" and evidence["status"] == 404 and evidence["matched"]
    assert any(f"{unclaimed} points at lab-docs.github.io" in w for w in run.state.warnings)
