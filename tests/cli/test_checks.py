"""`assetmon checks` as a user runs it: a real subprocess against a loopback web server."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.checklab import Lab, serve
from tests.support.processes import app_env, run_cli

LAB = Lab()
LAB.add(
    "127.0.0.1",
    [
        {
            "path": "/.git/config",
            "status": 200,
            "headers": {"Content-Type": "text/plain"},
            "body": '[core]\n\trepositoryformatversion = 0\n\tbare = false\n[remote "origin"]\n\turl = https://git.example/acme/site.git\n',
        },
        {"path": "/hello", "status": 200, "body": "<b>hello</b> [red]markup[/red]"},
    ],
)
TEMPLATE = {
    "id": "hello-page",
    "info": {
        "name": "Hello page",
        "author": "tester",
        "severity": "high",
        "tags": "demo",
        "reference": ["https://example.org/hello"],
    },
    "http": [
        {
            "path": ["{{BaseURL}}/hello"],
            "matchers": [{"type": "word", "words": ["hello"]}],
            "extractors": [{"type": "regex", "regex": ["\\[red\\]\\w+\\[/red\\]"]}],
        }
    ],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return app_env(tmp_path_factory.mktemp("checks-cli"), "redis://127.0.0.1:9/0")


@pytest.fixture(scope="module")
def url():
    with serve(LAB) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    (folder / "hello-page.yaml").write_text(yaml.safe_dump(TEMPLATE))
    (folder / "broken.yaml").write_text("id: broken\ninfo: {name: b, severity: low}\ndns: [{name: x}]\n")
    return folder


def test_run_finds_with_own_and_user_templates_json(env, url, templates):
    done = run_cli(env, "checks", "run", url, "--templates", str(templates), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    found = {r["template"]: r for r in report["results"]}
    assert "hello-page" in found and any(t.startswith("git-config") for t in found), sorted(found)
    assert found["hello-page"]["extracted"] == ["[red]markup[/red]"] and found["hello-page"]["fingerprint"]


def test_text_output_escapes_what_the_target_sent(env, url, templates):
    done = run_cli(env, "checks", "run", url, "-t", str(templates), "--no-builtin", "--format", "text")
    assert done.returncode == 1 and "[red]markup[/red]" in done.stdout and "Traceback" not in done.stderr


def test_sarif_output(env, url, templates):
    done = run_cli(env, "checks", "run", url, "-t", str(templates), "--no-builtin", "--format", "sarif")
    sarif = json.loads(done.stdout)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"][0]["ruleId"] == "hello-page"
    assert sarif["runs"][0]["results"][0]["level"] == "error"


def test_filters_and_nothing_found_exits_0(env, url, templates):
    done = run_cli(
        env, "checks", "run", url, "-t", str(templates), "--no-builtin", "--severity", "low", "--format", "json"
    )
    assert done.returncode == 2 and "no templates to run" in done.stderr  # the only template is high
    done = run_cli(
        env,
        "checks",
        "run",
        url,
        "-t",
        str(templates),
        "--no-builtin",
        "--exclude-id",
        "nothing",
        "--tags",
        "demo",
        "-f",
        "json",
    )
    assert done.returncode == 1
    clean = run_cli(env, "checks", "run", f"{url}/sub", "-t", str(templates), "--no-builtin", "-f", "json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["results"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://x.example/"], "only http:// and https://"),
        (["http://"], "no host"),
        (["http://127.0.0.1/", "--severity", "urgent"], "severity must be among"),
        (["http://127.0.0.1/", "-t", "/no/such/folder"], "no such file or directory"),
    ],
)
def test_bad_input_is_refused_with_a_message(env, args, message):
    done = run_cli(env, "checks", "run", *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_templates_stats(env, templates):
    done = run_cli(env, "checks", "templates", "--stats", "-t", str(templates), "--json")
    stats = json.loads(done.stdout)
    assert done.returncode == 0 and stats["skipped_by_reason"] == {"protocol-dns": 1}
    assert stats["loaded"] >= 81  # ours and the user's one
    listed = run_cli(env, "checks", "templates", "--tags", "demo", "-t", str(templates))
    assert "hello-page" in listed.stdout and "git-config" not in listed.stdout
