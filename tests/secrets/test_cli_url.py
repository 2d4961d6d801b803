"""`assetmon secrets url` against the local web lab: the same job as the API, run from the CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import app_env, run_cli


def test_url_scan_from_the_cli_without_redis(tmp_path, lab):
    site, _, planted = lab
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    done = run_cli(env, "secrets", "url", site.url + "/", "--format", "json")
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    assert {(f["url"].removeprefix(site.url), f["rule"]) for f in body["findings"]} == {
        (p.path, p.rule) for p in planted
    }
    assert body["new_findings"] == len(planted) and all(p.value not in done.stdout for p in planted)

    text = run_cli(env, "secrets", "url", site.url + "/")
    assert text.returncode == 1 and "0 new" in text.stdout and "slack-webhook-url" in text.stdout
    assert "skipped" in text.stdout and "HTTP 404" in text.stdout

    jobs = json.loads(run_cli(env, "jobs", "list", "--json").stdout)["jobs"]
    assert [j["name"] for j in jobs] == ["secrets_scan_url", "secrets_scan_url"]


@pytest.mark.parametrize(
    ("url", "needle"), [("ftp://x/", "only http:// and https://"), ("http://a b/", "spaces"), ("", "required")]
)
def test_bad_urls_exit_2_and_queue_nothing(tmp_path, url, needle):
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    done = run_cli(env, "secrets", "url", url)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr
    assert json.loads(run_cli(env, "jobs", "list", "--json").stdout)["count"] == 0
