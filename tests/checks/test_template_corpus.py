"""Several hundred templates that between them use every supported feature, and some of every kind the
engine does not run: the whole folder loads with the right count per skip reason, and every loaded
template runs against the lab without an error."""

from __future__ import annotations

import asyncio
import itertools

import yaml

from app.checks.loader import load_templates
from app.checks.runner import RunOptions, run_templates
from tests.support.checklab import Lab, pin_loopback, serve

MATCHERS = [
    {"type": "word", "words": ["hello", "world"]},
    {"type": "word", "words": ["HELLO"], "case-insensitive": True},
    {"type": "regex", "regex": ["h[a-z]+o"]},
    {"type": "status", "status": [200, 301]},
    {"type": "size", "size": [11]},
    {"type": "binary", "binary": ["68656c6c6f"]},
    {"type": "dsl", "dsl": ['contains(to_lower(body), "hello") && status_code < 400']},
    {"type": "dsl", "dsl": ["len(body) == content_length", 'regex("^h", body)'], "condition": "and"},
]
PARTS = ["body", "header", "all"]
EXTRACTORS = [
    {"type": "regex", "regex": ["(h\\w+)"], "group": 1},
    {"type": "kval", "kval": ["content_type"]},
    {"type": "json", "json": [".a"]},
    {"type": "xpath", "xpath": ["//p"]},
    {"type": "dsl", "dsl": ["to_upper(body)"]},
]
REQUESTS = [
    {"method": "GET", "path": ["{{BaseURL}}/"]},
    {"method": "HEAD", "path": ["{{RootURL}}/", "{{BaseURL}}/index"]},
    {"raw": ["GET /?h={{Hostname}} HTTP/1.1\nHost: {{Hostname}}\nX-Id: {{randstr}}\n\n"]},
    {"path": ["{{BaseURL}}/{{word}}"], "payloads": {"word": ["a", "b"]}, "attack": "batteringram"},
    {"path": ["{{BaseURL}}/{{a}}/{{b}}"], "payloads": {"a": ["x", "y"], "b": ["1", "2"]}, "attack": "clusterbomb"},
    {"path": ["{{BaseURL}}/{{a}}/{{b}}"], "payloads": {"a": ["x", "y"], "b": ["1", "2"]}, "attack": "pitchfork"},
    {"path": ["{{BaseURL}}/r"], "redirects": True, "max-redirects": 2, "headers": {"X-Test": "{{to_lower(Host)}}"}},
]
UNSUPPORTED = {
    "protocol-dns": {"dns": [{"name": "{{FQDN}}", "type": "A"}]},
    "protocol-network": {"tcp": [{"inputs": [{"data": "PING\r\n"}], "host": ["{{Hostname}}"]}]},
    "protocol-ssl": {"ssl": [{"address": "{{Host}}:{{Port}}"}]},
    "protocol-headless": {"headless": [{"steps": [{"action": "navigate"}]}]},
    "protocol-code": {"code": [{"engine": ["sh"], "source": "id"}]},
    "protocol-file": {"file": [{"extensions": ["all"]}]},
    "workflow": {"workflows": [{"template": "x.yaml"}]},
    "flow": {
        "flow": "http(1) && http(2)",
        "http": [{"path": ["{{BaseURL}}"], "matchers": [{"type": "status", "status": [200]}]}],
    },
    "interactsh": {
        "http": [
            {
                "path": ["{{BaseURL}}/?u={{interactsh-url}}"],
                "matchers": [{"type": "word", "part": "interactsh_protocol", "words": ["dns"]}],
            }
        ]
    },
    "payload-file": {
        "http": [
            {
                "path": ["{{BaseURL}}/{{p}}"],
                "payloads": {"p": "helpers/wordlists/x.txt"},
                "matchers": [{"type": "status", "status": [200]}],
            }
        ]
    },
    "matcher-xpath": {"http": [{"path": ["{{BaseURL}}"], "matchers": [{"type": "xpath", "xpath": ["//a"]}]}]},
    "race": {
        "http": [
            {
                "raw": ["GET / HTTP/1.1\nHost: {{Hostname}}\n\n"],
                "race": True,
                "race_count": 10,
                "matchers": [{"type": "status", "status": [200]}],
            }
        ]
    },
    "fuzzing": {
        "http": [
            {"path": ["{{BaseURL}}"], "fuzzing": [{"part": "query"}], "matchers": [{"type": "status", "status": [200]}]}
        ]
    },
    "dsl": {"http": [{"path": ["{{BaseURL}}"], "matchers": [{"type": "dsl", "dsl": ["unknown_helper(body)"]}]}]},
}
MALFORMED = [
    "id: [not, a, string]\n",
    "id: ok\ninfo: {severity: high}\n",
    "id: ok\ninfo: {name: n, severity: high}\nhttp: {path: x}\n",
    "id: ok\ninfo: {name: n, severity: high}\nhttp: [{path: ['{{BaseURL}}'], matchers: [{type: status, status: [99999]}]}]\n",
    "\t: : :\n",
]


def _info(name: str) -> dict:
    return {"name": name, "author": "assetmon", "severity": "info", "tags": "corpus"}


def write_corpus(folder) -> tuple[int, dict[str, int]]:
    """Writes the corpus; returns (templates that must load, skips expected per reason)."""
    count = 0
    combos = itertools.product(range(len(REQUESTS)), range(len(MATCHERS)), PARTS, ("and", "or"), (False, True))
    for r, m, part, condition, negative in combos:
        matcher = dict(MATCHERS[m], part=part, negative=negative)
        if matcher["type"] in ("status", "dsl"):
            matcher.pop("part")
        request = dict(
            REQUESTS[r],
            **{"matchers-condition": condition},
            matchers=[matcher, {"type": "status", "status": [200, 404]}],
        )
        if count % 3 == 0:
            request["extractors"] = [EXTRACTORS[count % len(EXTRACTORS)]]
        data = {"id": f"corpus-{count}", "info": _info(f"corpus {count}"), "http": [request]}
        (folder / f"corpus-{count}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        count += 1
    expected: dict[str, int] = {}
    for reason, body in UNSUPPORTED.items():
        for copy in range(3):
            data = {"id": f"unsupported-{reason}-{copy}", "info": _info(reason)} | body
            (folder / "unsupported" / f"{reason}-{copy}.yaml").parent.mkdir(exist_ok=True)
            (folder / "unsupported" / f"{reason}-{copy}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        expected[reason] = 3
    for i, text in enumerate(MALFORMED):
        (folder / f"malformed-{i}.yaml").write_text(text)
    expected["invalid"] = len(MALFORMED)
    (folder / "dup.yaml").write_text((folder / "corpus-0.yaml").read_text())
    expected["duplicate-id"] = 1
    return count, expected


def test_a_folder_of_hundreds_of_templates_loads_and_runs(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    supported, expected = write_corpus(folder)
    assert supported >= 300
    loaded = load_templates([folder], builtin=False)
    stats = loaded.stats()
    assert stats["loaded"] == supported, [s for s in loaded.skipped if s.reason not in expected][:5]
    assert stats["skipped_by_reason"] == expected
    lab = Lab()
    lab.add(
        "corpus",
        [
            {"path": "/r", "status": 302, "headers": {"Location": "/"}},
            {"path": "*", "status": 200, "headers": {"Content-Type": "text/html"}, "body": "hello world"},
        ],
    )
    with serve(lab) as port:
        options = RunOptions(pin=pin_loopback, concurrency=32, timeout=5, host_rate=100_000, global_rate=100_000)
        report = asyncio.run(run_templates([f"http://corpus.lab:{port}"], loaded.templates, options))
    assert report.errors == 0 and report.requests >= supported
    assert len({r.template for r in report.results}) > supported // 4  # many match, many do not: both ran
