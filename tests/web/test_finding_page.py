"""The page of one secret finding and its triage, through a real web server: escaped context with the
secret marked, hostile target content shown as text, triage by API and UI (kept by fingerprint),
reveal and triage audited, admins only. Fake secrets are generated per test and stored by the real
engine and store in a separate process, as a scan would."""

from __future__ import annotations

import json
import random
import re

import pytest

from app.secrets.engine import redact
from tests.support.processes import run_cli, run_python
from tests.support.weblab import fake
from tests.web.conftest import login, shot

HOSTILE = "<script>alert(1)</script>"

_SEED = """
import json
from app.secrets import store
from app.secrets.engine import scan_bytes
from app.secrets.scan import make_matcher

matcher = make_matcher()
for url, body in json.loads({files!r}):
    store.record(scan_bytes(matcher, body.encode(), url), url, "{job}")
print(json.dumps({{f["url"] + " " + f["rule"]: f["id"] for f in store.list_findings(limit=1000)}}))
"""


def seed(env: dict[str, str], files: list[tuple[str, str]], job: str = "0" * 32) -> dict[str, int]:
    """Scan and store `files` ((url, body)) as a scan job would; {"url rule": finding id}."""
    done = run_python(env, _SEED.format(files=json.dumps(files), job=job))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def audit_rows(env: dict[str, str]) -> list[dict]:
    done = run_python(env, "import json; from app.accounts import audit; print(json.dumps(audit.recent()))")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def viewer_token(env: dict[str, str]) -> dict[str, str]:
    done = run_cli(env, "tokens", "create", "read-only", "--role", "viewer")
    assert done.returncode == 0, done.stderr
    return {"Authorization": f"Bearer {done.stdout.strip()}"}


@pytest.fixture
def planted(fallback_env, fallback_web) -> dict:
    """A GitHub token next to hostile markup, the same token on a second asset, and a Stripe key
    found at a URL that is not http(s)."""
    rng = random.Random()
    github, stripe = fake("github-pat", rng), fake("stripe-secret-key", rng)
    bundle = f'const banner="{HOSTILE}";const cfg={{token:"{github}",api:"/v1"}};window.x=1;\n'
    ids = seed(
        fallback_env,
        [
            (f"https://app.example.com/static/{HOSTILE}.js", bundle),
            ("https://cdn.example.net/bundle.js", bundle),
            ("javascript:alert(document.domain)//main.js", f'const k="{stripe}";\n'),
        ],
    )
    by_rule = {
        "app": ids[f"https://app.example.com/static/{HOSTILE}.js github-pat"],
        "cdn": ids["https://cdn.example.net/bundle.js github-pat"],
        "stripe_id": ids["javascript:alert(document.domain)//main.js stripe-secret-key"],
    }
    return {"github": github, "stripe": stripe, **by_rule}


def test_the_page_shows_escaped_context_with_the_secret_marked(fallback_web, planted):
    response = fallback_web.get(f"/secrets/{planted['app']}")
    assert response.status_code == 200, response.text
    html = response.text
    assert planted["github"] not in html  # redacted until revealed
    assert f'<mark class="secret-mark">{redact(planted["github"])}</mark>' in html
    context = re.search(r'<pre class="context finding-context">(.*?)</pre>', html, re.S).group(1)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in context and "\n" in context  # beautified, escaped
    assert HOSTILE not in html and "<script>alert" not in html
    assert "github-pat" in html and "GitHub" in html and "app.example.com" in html
    # The URL is shown as text, and linked only because it is http(s).
    assert f"https://app.example.com/static/{HOSTILE}.js" not in html
    assert "https://app.example.com/static/&lt;script&gt;alert(1)&lt;/script&gt;.js" in html
    assert 'class="reveal"' in html and "Mark false positive" in html  # the API token is an admin

    other = fallback_web.get(f"/secrets/{planted['stripe_id']}").text
    assert "javascript:alert(document.domain)//main.js" in other  # as text...
    assert 'href="javascript:' not in other  # ...never as a link
    assert planted["stripe"] not in other

    assert fallback_web.get("/secrets/999999").status_code == 404


def test_triage_through_the_api_is_kept_by_fingerprint(fallback_web, fallback_env, planted):
    app_id, cdn_id = planted["app"], planted["cdn"]
    url = f"/api/v1/secrets/findings/{app_id}/triage"
    marked = fallback_web.post(url, json={"status": "false_positive", "note": "a test fixture"})
    assert marked.status_code == 200, marked.text
    verdict = marked.json()["triage"]
    assert verdict["status"] == "false_positive" and verdict["note"] == "a test fixture"
    assert verdict["actor"] == "API_TOKEN" and verdict["seen_again"] is False
    # The same secret on another asset carries the verdict.
    assert fallback_web.get(f"/api/v1/secrets/findings/{cdn_id}").json()["triage"]["status"] == "false_positive"

    def listed(status: str | None = None) -> set[int]:
        params = {"status": status} if status else {}
        response = fallback_web.get("/api/v1/secrets/findings", params=params)
        assert response.status_code == 200, response.text
        return {f["id"] for f in response.json()["findings"]}

    assert listed() == listed("all") == {app_id, cdn_id, planted["stripe_id"]}
    assert listed("open") == {planted["stripe_id"]}
    assert listed("false_positive") == {app_id, cdn_id} and listed("resolved") == set()
    bad_filter = fallback_web.get("/api/v1/secrets/findings", params={"status": "closed"})
    assert bad_filter.status_code == 422 and "status" in bad_filter.json()["detail"]

    for body, needle in [
        ({"status": "wontfix"}, "'false_positive', 'resolved' or 'open'"),
        ({}, "status: Field required"),
        ({"status": "resolved", "note": "x" * 501}, "at most 500 characters"),
        ({"status": "resolved", "by": "me"}, "Extra inputs are not permitted"),
    ]:
        refused = fallback_web.post(url, json=body)
        assert refused.status_code == 422, refused.text
        assert needle in refused.json()["detail"] and "Traceback" not in refused.text
    assert fallback_web.post("/api/v1/secrets/findings/999999/triage", json={"status": "resolved"}).status_code == 404

    # A later scan sees the secret again: the verdict holds, and says so.
    bundle_url = "https://cdn.example.net/bundle.js"
    body = f'const banner="{HOSTILE}";const cfg={{token:"{planted["github"]}",api:"/v1"}};window.x=1;\n'
    seed(fallback_env, [(bundle_url, body)], job="1" * 32)
    again = fallback_web.get(f"/api/v1/secrets/findings/{cdn_id}").json()
    assert again["triage"]["status"] == "false_positive" and again["triage"]["seen_again"] is True
    assert "seen again since it was marked false positive" in fallback_web.get(f"/secrets/{cdn_id}").text.lower()
    rows = fallback_web.get("/ui/secrets/rows", params={"status": "false_positive"}).text
    assert "seen again since it was marked false positive" in rows

    reopened = fallback_web.post(url, json={"status": "open"})
    assert reopened.status_code == 200 and reopened.json()["triage"] is None
    assert listed("open") == {app_id, cdn_id, planted["stripe_id"]}

    trail = [(a["action"], a["subject"], a["actor"]) for a in audit_rows(fallback_env)]
    assert trail == [
        ("secret.reopen", f"secret finding {app_id}", "API_TOKEN"),
        ("secret.triage", f"secret finding {app_id}", "API_TOKEN"),
    ]


def test_triage_and_reveal_from_the_page_are_audited(fallback_web, fallback_env, planted):
    app_id = planted["app"]
    htmx = {"HX-Request": "true"}
    panel = fallback_web.post(
        f"/ui/secrets/findings/{app_id}/triage", data={"status": "resolved", "note": f"rotated {HOSTILE}"}, headers=htmx
    )
    assert panel.status_code == 200, panel.text
    assert 'id="triage"' in panel.text and "resolved" in panel.text and "Reopen" in panel.text
    assert "rotated &lt;script&gt;" in panel.text and HOSTILE not in panel.text
    assert "resolved" in fallback_web.get(f"/secrets/{app_id}").text

    refused = fallback_web.post(f"/ui/secrets/findings/{app_id}/triage", data={"status": "gone"}, headers=htmx)
    assert refused.status_code == 422 and "status must be one of" in refused.text and 'id="triage"' in refused.text

    revealed = fallback_web.post(f"/ui/secrets/findings/{app_id}/reveal", headers=htmx)
    assert revealed.status_code == 200 and planted["github"] in revealed.text and "revealed" in revealed.text
    api = fallback_web.post(f"/api/v1/secrets/findings/{planted['stripe_id']}/reveal")
    assert api.status_code == 200 and api.json()["secret"] == planted["stripe"]

    trail = audit_rows(fallback_env)
    assert [a["action"] for a in trail] == ["secret.reveal", "secret.reveal", "secret.triage"]
    reveal = trail[1]
    assert reveal["subject"] == f"secret finding {app_id}" and reveal["actor"] == "API_TOKEN"
    assert reveal["ip"] == "127.0.0.1" and reveal["detail"]["rule"] == "github-pat"
    assert trail[2]["detail"]["note"] == f"rotated {HOSTILE}"
    assert not [a for a in trail if planted["github"] in str(a) or planted["stripe"] in str(a)]

    # Without htmx's header (a cross-site form, say) the page's actions are refused.
    assert fallback_web.post(f"/ui/secrets/findings/{app_id}/reveal").status_code == 403
    assert fallback_web.post(f"/ui/secrets/findings/{app_id}/triage", data={"status": "open"}).status_code == 403


def test_a_viewer_cannot_reveal_or_triage(fallback_web, fallback_env, planted):
    viewer = viewer_token(fallback_env)
    page = fallback_web.get(f"/secrets/{planted['app']}", auth=False, headers=viewer)
    assert page.status_code == 200, page.text
    assert 'class="reveal"' not in page.text and "Mark false positive" not in page.text
    assert 'id="triage"' in page.text  # the verdict is shown, the buttons are not
    rows = fallback_web.get("/ui/secrets/rows", params={"status": "all"}, auth=False, headers=viewer).text
    assert "github-pat" in rows and 'class="reveal"' not in rows

    for path, kw in [
        (f"/api/v1/secrets/findings/{planted['app']}/reveal", {}),
        (f"/api/v1/secrets/findings/{planted['app']}/triage", {"json": {"status": "resolved"}}),
        (f"/ui/secrets/findings/{planted['app']}/reveal", {"headers": {"HX-Request": "true", **viewer}}),
        (f"/ui/secrets/findings/{planted['app']}/triage", {"headers": {"HX-Request": "true", **viewer}}),
    ]:
        response = fallback_web.post(path, auth=False, **{"headers": viewer, **kw})
        assert response.status_code == 403, (path, response.text)
        assert planted["github"] not in response.text
    assert [a["action"] for a in audit_rows(fallback_env) if a["action"].startswith("secret.")] == []


@pytest.mark.browser
def test_open_a_finding_reveal_it_and_mark_it_false_positive(fallback_web, planted, page):
    login(page, fallback_web.url, then="/secrets")
    page.locator("tr.finding a.rule", has_text="github-pat").first.wait_for()
    page.locator(f"#finding-{planted['app']} a.rule").click()
    page.wait_for_url(f"{fallback_web.url}/secrets/{planted['app']}")
    assert page.locator("pre.finding-context mark.secret-mark").count() >= 1
    assert HOSTILE in page.locator("pre.finding-context").inner_text()  # shown as text, not run
    assert planted["github"] not in page.content()

    page.click("button.reveal")
    page.locator("code.revealed").wait_for()
    assert page.locator("code.revealed").inner_text() == planted["github"]

    page.fill(".triage-form input[name=note]", "documentation example")
    page.click("button[value=false_positive]")
    page.locator("#triage.triage-false_positive").wait_for()
    assert "documentation example" in page.locator("#triage").inner_text()
    assert page.locator("button[value=open]").is_visible()
    assert page.locator("code.revealed").inner_text() == planted["github"]  # no reload: still revealed
    shot(page, "secret-finding")
