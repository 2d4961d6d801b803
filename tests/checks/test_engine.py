"""The template engine against a loopback lab: every supported nuclei feature, scope, safety and bounds."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest
import yaml

from app.checks.loader import Filters, load_templates, read_template
from app.checks.runner import RunOptions, run_templates
from app.errors import InvalidInput, TemplateError, UnsupportedTemplate
from tests.support.checklab import Lab, pin_loopback, serve

LAB = Lab()
LAB.add(
    "app",
    [
        {
            "path": "/login",
            "status": 200,
            "headers": {"Content-Type": "text/html", "X-App-Version": "4.2.1"},
            "body": "<html><title>Acme Admin</title><a href='/x' id='l'>in</a></html>",
        },
        {
            "path": "/api/info",
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": '{"version": "2.3.4", "users": [{"name": "ann"}, {"name": "bob"}]}',
        },
        {"path": "/token", "status": 200, "body": "csrf=abc123xyz;"},
        {"path": "/use?csrf=abc123xyz", "status": 200, "body": "token accepted"},
        {"path": "/bin", "status": 200, "body_base64": "UEsDBAoAAAAAAA=="},
        {"path": "/go-away", "status": 302, "headers": {"Location": "https://elsewhere.example/landing"}},
        {"path": "/go-home", "status": 302, "headers": {"Location": "/home"}},
        {"path": "/home", "status": 200, "body": "home sweet home"},
        {
            "path": "/echo",
            "status": 200,
            "headers": {"X-Seen-Agent": "{{request.header.User-Agent}}", "X-Q": "{{request.query.q}}"},
            "body": "echo",
        },
        {"path": "/user/admin", "status": 200, "body": "admin profile"},
        {"path": "/user/root", "status": 200, "body": "root profile"},
        {"path": "/rows?user=admin&pass=letmein", "status": 200, "body": "pair ok"},
        {
            "path": "/feed.xml",
            "status": 200,
            "headers": {"Content-Type": "application/xml"},
            "body": "<?xml version='1.0'?><feed><entry><title>One</title></entry><entry><title>Two</title></entry></feed>",
        },
        {"path": "/big", "status": 200, "body": "A" * 300_000 + "TAIL"},
    ],
)


@pytest.fixture(scope="module")
def port():
    with serve(LAB) as port:
        yield port


def _template(tmp_path, body: dict, name: str = "t"):
    data = {"id": name, "info": {"name": name, "author": "assetmon", "severity": "low", "tags": "test"}} | body
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return read_template(path)


def _run(port, templates, targets=None, **options):
    opts = RunOptions(
        pin=pin_loopback, timeout=options.pop("timeout", 5), host_rate=10_000, global_rate=100_000, **options
    )
    return asyncio.run(run_templates(targets or [f"http://app.lab:{port}"], templates, opts))


def _request(**request):
    return {"http": [request]}


def test_word_status_and_header_matchers(port, tmp_path):
    t = _template(
        tmp_path,
        _request(
            method="GET",
            path=["{{BaseURL}}/login"],
            **{"matchers-condition": "and"},
            matchers=[
                {"type": "status", "status": [200]},
                {"type": "word", "words": ["ACME ADMIN"], "case-insensitive": True},
                {"type": "word", "part": "header", "words": ["X-App-Version"]},
                {"type": "word", "words": ["Forbidden"], "negative": True},
            ],
            extractors=[
                {"type": "kval", "kval": ["x_app_version"]},
                {"type": "xpath", "xpath": ["//a"], "attribute": "href"},
            ],
        ),
    )
    report = _run(port, [t])
    assert [r.url for r in report.results] == [f"http://app.lab:{port}/login"]
    assert report.results[0].extracted == ["4.2.1", "/x"]


@pytest.mark.parametrize(
    ("matcher", "hits"),
    [
        ({"type": "regex", "regex": [r'"version":\s*"2\.\d+'], "part": "body"}, True),
        ({"type": "regex", "regex": ["nope", "version"], "condition": "and"}, False),
        ({"type": "word", "words": ["ann", "bob"], "condition": "and"}, True),
        ({"type": "size", "size": [65]}, True),
        (
            {
                "type": "dsl",
                "dsl": ['status_code == 200 && contains(content_type, "json") && compare_versions("2.3.4", "< 3")'],
            },
            True,
        ),
        ({"type": "dsl", "dsl": ["len(body) > 100000"]}, False),
        ({"type": "word", "part": "all", "words": ["HTTP/1.1 200", "application/json"], "condition": "and"}, True),
    ],
)
def test_matcher_kinds(port, tmp_path, matcher, hits):
    t = _template(tmp_path, _request(path=["{{BaseURL}}/api/info"], matchers=[matcher]))
    assert bool(_run(port, [t]).results) is hits


def test_binary_matcher_and_json_extractor(port, tmp_path):
    binary = _template(
        tmp_path, _request(path=["{{BaseURL}}/bin"], matchers=[{"type": "binary", "binary": ["504b0304"]}]), "b"
    )
    extract = _template(
        tmp_path,
        _request(path=["{{BaseURL}}/api/info"], extractors=[{"type": "json", "json": [".users[].name", ".version"]}]),
        "j",
    )
    report = _run(port, [binary, extract])
    assert {r.template: r.extracted for r in report.results} == {"b": [], "j": ["ann", "bob", "2.3.4"]}


def test_xpath_on_xml_and_regex_groups(port, tmp_path):
    t = _template(
        tmp_path,
        _request(
            path=["{{BaseURL}}/feed.xml"],
            extractors=[
                {"type": "xpath", "xpath": ["/feed/entry/title"]},
                {"type": "regex", "regex": ["<title>(\\w+)</title>"], "group": 1},
            ],
        ),
    )
    assert _run(port, [t]).results[0].extracted == ["One", "Two"]


def test_later_requests_use_values_extracted_earlier(port, tmp_path):
    t = _template(
        tmp_path,
        {
            "http": [
                {
                    "path": ["{{BaseURL}}/token"],
                    "extractors": [
                        {"type": "regex", "name": "csrf", "internal": True, "group": 1, "regex": ["csrf=(\\w+);"]}
                    ],
                },
                {
                    "path": ["{{BaseURL}}/use?csrf={{csrf}}"],
                    "matchers": [{"type": "dsl", "dsl": ['contains(body_2, "accepted") && status_code_2 == 200']}],
                },
            ]
        },
    )
    report = _run(port, [t])
    assert [r.url for r in report.results] == [f"http://app.lab:{port}/use?csrf=abc123xyz"]
    assert report.results[0].extracted == []  # internal values are not shown


@pytest.mark.parametrize(
    ("attack", "urls"),
    [
        ("batteringram", {"/user/admin", "/user/root"}),
        ("pitchfork", {"/rows?user=admin&pass=letmein"}),
        ("clusterbomb", {"/rows?user=admin&pass=letmein"}),
    ],
)
def test_payload_attack_modes(port, tmp_path, attack, urls):
    if attack == "batteringram":
        request = {"path": ["{{BaseURL}}/user/{{name}}"], "payloads": {"name": ["admin", "guest", "root"]}}
    else:
        request = {
            "path": ["{{BaseURL}}/rows?user={{u}}&pass={{p}}"],
            "payloads": {"u": ["admin", "guest"], "p": ["letmein", "x"]},
        }
    request |= {"attack": attack, "matchers": [{"type": "word", "words": ["profile", "pair ok"]}]}
    report = _run(port, [_template(tmp_path, {"http": [request]})])
    assert {r.url.split(str(port))[1] for r in report.results} == urls
    # pitchfork pairs values side by side (2 requests), clusterbomb tries every pair (4)
    assert report.requests == {"batteringram": 3, "pitchfork": 2, "clusterbomb": 4}[attack]


def test_stop_at_first_match(port, tmp_path):
    request = {
        "path": ["{{BaseURL}}/user/admin", "{{BaseURL}}/user/root"],
        "stop-at-first-match": True,
        "matchers": [{"type": "word", "words": ["profile"]}],
    }
    report = _run(port, [_template(tmp_path, {"http": [request]})])
    assert len(report.results) == 1 and report.requests == 1


def test_raw_requests_and_variables(port, tmp_path):
    raw = "GET /echo?q={{Host}}-{{Port}} HTTP/1.1\nHost: {{Hostname}}\nUser-Agent: probe-{{randstr}}\n\n"
    t = _template(
        tmp_path,
        _request(
            raw=[raw],
            matchers=[
                {
                    "type": "regex",
                    "part": "header",
                    "regex": [f"X-Q: app\\.lab-{port}", "X-Seen-Agent: probe-[A-Za-z0-9]{27}"],
                    "condition": "and",
                }
            ],
        ),
    )
    assert len(_run(port, [t]).results) == 1


def test_redirects_are_followed_on_the_same_host_only(port, tmp_path):
    home = _template(
        tmp_path,
        _request(
            path=["{{BaseURL}}/go-home"], redirects=True, matchers=[{"type": "word", "words": ["home sweet home"]}]
        ),
        "h",
    )
    away = _template(
        tmp_path,
        _request(path=["{{BaseURL}}/go-away"], redirects=True, matchers=[{"type": "status", "status": [200]}]),
        "a",
    )
    report = _run(port, [home, away])
    assert [r.template for r in report.results] == ["h"]
    assert ("elsewhere", "GET", "/landing") not in LAB.requests and report.errors == 0


def test_a_path_on_another_host_is_never_sent(port, tmp_path):
    t = _template(
        tmp_path,
        _request(
            path=["http://other.lab:{{Port}}/login", "{{BaseURL}}/login"],
            matchers=[{"type": "status", "status": [200]}],
        ),
    )
    before = sum(1 for site, *_ in LAB.requests if site == "other")
    report = _run(port, [t])
    assert report.out_of_scope == 1 and len(report.results) == 1
    assert sum(1 for site, *_ in LAB.requests if site == "other") == before


def test_state_changing_templates_run_only_when_allowed(port, tmp_path):
    t = _template(
        tmp_path,
        _request(method="POST", path=["{{BaseURL}}/home"], body="a=1", matchers=[{"type": "status", "status": [200]}]),
    )
    assert t.sends_bodies
    assert _run(port, [t]).skipped_unsafe == ["t"]
    assert len(_run(port, [t], allow_bodies=True).results) == 1


def test_bodies_are_capped(port, tmp_path):
    t = _template(tmp_path, _request(path=["{{BaseURL}}/big"], matchers=[{"type": "word", "words": ["TAIL"]}]))
    assert _run(port, [t], body_cap=100_000).results == []
    assert len(_run(port, [t], body_cap=400_000).results) == 1


def test_a_hanging_server_costs_one_timeout(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def hold():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])  # accept and say nothing

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        t = _template(tmp_path, _request(path=["{{BaseURL}}/"], matchers=[{"type": "status", "status": [200]}]))
        started = time.monotonic()
        report = _run(
            listener.getsockname()[1], [t], targets=[f"http://hang.lab:{listener.getsockname()[1]}"], timeout=1
        )
        assert report.errors == 1 and report.results == [] and time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_connections_are_reused(port, tmp_path):
    t = _template(
        tmp_path,
        _request(
            path=[f"{{{{BaseURL}}}}/user/admin?n={i}" for i in range(30)],
            matchers=[{"type": "word", "words": ["nothing-here"]}],
        ),
    )
    report = _run(port, [t], concurrency=1)
    assert report.requests == 30 and report.errors == 0


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("id: x\ninfo: {name: x, severity: low}\ndns: [{name: '{{FQDN}}'}]\n", UnsupportedTemplate, "protocol-dns"),
        (
            "id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}/{{interactsh-url}}'], matchers: [{type: word, words: [a]}]}]\n",
            UnsupportedTemplate,
            "interactsh",
        ),
        (
            "id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}'], matchers: [{type: xpath, xpath: [a]}]}]\n",
            UnsupportedTemplate,
            "matcher-xpath",
        ),
        (
            "id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}'], payloads: {a: /etc/passwd}, matchers: [{type: word, words: [a]}]}]\n",
            UnsupportedTemplate,
            "payload-file",
        ),
        (
            "id: x\ninfo: {name: x, severity: low}\nflow: http(1)\nhttp: [{path: ['{{BaseURL}}'], matchers: [{type: word, words: [a]}]}]\n",
            UnsupportedTemplate,
            "flow",
        ),
        (
            "id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}'], matchers: [{type: regex, regex: ['a\\z']}]}]\n",
            UnsupportedTemplate,
            "regex-syntax",
        ),
        (
            "id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}'], matchers: [{type: dsl, dsl: ['no_such_helper(body)']}]}]\n",
            UnsupportedTemplate,
            "dsl",
        ),
        ("id: x\ninfo: {name: x, severity: huge}\nhttp: []\n", TemplateError, "invalid"),
        ("id: 'a b'\ninfo: {name: x}\n", TemplateError, "invalid"),
        ("id: x\ninfo: {name: x, severity: low}\nhttp: [{path: ['{{BaseURL}}']}]\n", TemplateError, "invalid"),
        ("a: &a [1, 2]\nb: &b [*a, *a]\n", UnsupportedTemplate, "yaml-aliases"),
        ("id: x\n  bad: [\n", TemplateError, "invalid"),
        ("- just\n- a list\n", TemplateError, "invalid"),
    ],
)
def test_unusable_templates_are_reported_with_a_reason(tmp_path, text, error, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error):
        read_template(path)
    loaded = load_templates([tmp_path], builtin=False)
    assert loaded.templates == [] and [s.reason for s in loaded.skipped] == [reason]


def test_filters(tmp_path):
    for name, severity, tags, author in [
        ("a", "high", "cve,rce", "ann"),
        ("b", "info", "panel", "bob"),
        ("c", "medium", "panel,exposure", "ann"),
    ]:
        data = {
            "id": name,
            "info": {"name": name, "author": author, "severity": severity, "tags": tags},
            "http": [{"path": ["{{BaseURL}}"], "matchers": [{"type": "status", "status": [200]}]}],
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))

    def ids(**filters):
        return sorted(
            t.id for t in load_templates([tmp_path], builtin=False, filters=Filters.from_lists(**filters)).templates
        )

    assert ids() == ["a", "b", "c"]
    assert ids(tags=["panel"]) == ["b", "c"]
    assert ids(severities=["high,medium"]) == ["a", "c"]
    assert ids(authors=["ann"], exclude_tags=["rce"]) == ["c"]
    assert ids(ids=["a", "b"], exclude_ids=["b"]) == ["a"]
    with pytest.raises(InvalidInput, match="severity"):
        Filters.from_lists(severities=["urgent"])
