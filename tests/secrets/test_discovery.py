"""JS discovery on a real local web app: page, inline script, webpack chunks, Vite preload, gzip,
source map; off-site scripts and redirects not followed; limits honoured. Loopback only."""

from __future__ import annotations

import gzip

import brotli
import pytest

from app.net.urls import InvalidURL, check_url, same_site
from app.secrets.discovery import Limits, discover
from tests.support.weblab import LabServer


def _served(site: LabServer, path: str) -> bytes:
    route = site.routes[path]
    encoding = route.headers.get("content-encoding")
    return {"gzip": gzip.decompress, "br": brotli.decompress}.get(encoding, bytes)(route.body)


def test_finds_every_planted_secret_exactly_and_nothing_else(settings_env, lab):
    site, offsite, planted = lab
    result = discover(site.url + "/", limits=Limits(max_files=50))

    found = {(f.file.removeprefix(site.url), f.rule, f.line) for f in result.findings}
    assert found == {(p.path, p.rule, p.line) for p in planted}
    for f in result.findings:
        body = _served(site, f.file.removeprefix(site.url))
        assert body[f.start : f.end] == f.value  # exact byte offsets in the decoded response
        assert f.secret in {p.value for p in planted}
    mapped = next(f for f in result.findings if f.rule == "github-pat")
    assert (mapped.source, mapped.source_line) == ("webpack://lab/./src/config.ts", 3)

    assert offsite.requests == []  # off-site scripts and an off-site redirect are not followed
    skipped = {f.url.removeprefix(site.url): f.skipped for f in result.files if f.skipped}
    assert skipped["/missing.js"] == "HTTP 404"
    assert "decompression bomb" in skipped["/bomb.js"]
    assert "redirects off the site" in skipped["/go/cdn.js"]
    kinds = {f.url.removeprefix(site.url): f.kind for f in result.files}
    assert kinds["/static/js/main.9c1d2e.js.map"] == "map"
    assert kinds["/static/js/42.5e6f7a8b.chunk.js"] == "script"  # from webpack's chunk map
    assert {"/api/v2/users/me", "https://api.lab.test/v1/graphql", "/api/v2"} <= set(result.endpoints)


def test_limits_on_files_and_depth(settings_env, lab):
    site, _, _ = lab
    shallow = discover(site.url + "/", limits=Limits(max_depth=1))
    fetched = {f.url.removeprefix(site.url) for f in shallow.files}
    assert "/static/js/main.9c1d2e.js" in fetched
    assert "/static/js/17.1a2b3c4d.chunk.js" not in fetched and "/static/js/main.9c1d2e.js.map" not in fetched

    few = discover(site.url + "/", limits=Limits(max_files=3))
    assert len(few.files) == 3
    assert any("file limit (3) reached" in w for w in few.warnings)


def test_size_cap_skips_with_a_reason(settings_env, lab):
    site, _, _ = lab
    site.add("/static/js/main.9c1d2e.js", "x" * 5000, content_type="text/javascript")
    result = discover(site.url + "/", limits=Limits(max_file_bytes=2048))
    reasons = {f.url.removeprefix(site.url): f.skipped for f in result.files}
    assert "2,048-byte cap" in reasons["/static/js/main.9c1d2e.js"]


def test_slow_servers_are_bounded_by_the_request_timeout_and_the_time_budget(settings_env, lab):
    site, _, _ = lab
    site.add("/static/js/main.9c1d2e.js", "var a=1;", delay=5, content_type="text/javascript")
    slow = discover(site.url + "/", limits=Limits(request_timeout=0.5))
    reasons = {f.url.removeprefix(site.url): f.skipped for f in slow.files}
    assert reasons["/static/js/main.9c1d2e.js"] == "timed out"
    assert len(slow.findings) >= 3  # everything else was still fetched and scanned

    budget = discover(site.url + "/", limits=Limits(timeout=1.5))
    assert any("time budget of 1.5 s reached" in w for w in budget.warnings), budget.warnings
    assert "/static/js/main.9c1d2e.js" not in {f.url.removeprefix(site.url) for f in budget.files}


def test_unreachable_target_is_a_result_not_a_crash(settings_env):
    result = discover("http://127.0.0.1:1/", limits=Limits(request_timeout=2))
    assert [f.skipped for f in result.files] == ["cannot connect: All connection attempts failed"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "a URL is required"),
        ("ftp://example.com/", "only http:// and https://"),
        ("https://", "no host name"),
        ("https://exa mple.com/", "spaces"),
        ("https://user:pw@example.com/", "user name and password"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://" + "a" * 2100 + ".com/", "longer than 2048"),
    ],
)
def test_bad_urls_are_explained(url, message):
    with pytest.raises(InvalidURL, match=message):
        check_url(url)


def test_same_site_uses_the_public_suffix_list():
    assert same_site("https://cdn.shop.example.co.uk/a.js", "https://www.example.co.uk/")
    assert not same_site("https://evil.co.uk/a.js", "https://www.example.co.uk/")
    assert not same_site("https://a.github.io/x.js", "https://b.github.io/")  # a private suffix
    assert not same_site("http://127.0.0.2/x.js", "http://127.0.0.1/")


def test_pinned_hosts_connect_where_the_scan_says_and_nowhere_else(settings_env, lab):
    site, offsite, planted = lab
    # "app.lab.test" exists only in the scan's own resolution: pinned to the lab server's address.
    pinned = {"app.lab.test": "127.0.0.1"}
    result = discover(f"http://app.lab.test:{site.port}/", limits=Limits(max_files=50), pin=pinned.get)
    assert {f.rule for f in result.findings} == {p.rule for p in planted}
    refused = discover(f"http://elsewhere.lab.test:{site.port}/", pin=pinned.get)
    assert "out of scope" in refused.files[0].skipped
