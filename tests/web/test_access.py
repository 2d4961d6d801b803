"""Access control through a real web server: nothing without a user or token, CSRF on browser
sessions, viewers read only, throttled sign-in, first-run set-up, and the session cookie's flags."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import ADMIN_PASSWORD, ADMIN_USER, WebServer, app_env, run_cli

DUMMY = {
    "job_id": "0" * 32,
    "scan_id": "0" * 32,
    "finding_id": "1",
    "target_id": "1",
    "channel_id": "1",
    "token_id": "1",
    "username": "nobody",
    "task": "health_check",
    "path": "app.css",
}
OPEN = {"/healthz", "/login", "/setup", "/metrics", "/static"}


def _routes() -> list[tuple[str, str]]:
    from app.main import app

    found = []
    # Routers included in the app keep their own route lists (with their prefixes).
    routes = [r for top in app.routes for r in getattr(getattr(top, "original_router", None), "routes", [top])]
    for route in routes:
        path = getattr(route, "path", "")
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD" or path in OPEN:
                continue
            found.append((method, re.sub(r"\{(\w+)(:\w+)?\}", lambda m: DUMMY.get(m.group(1), "1"), path)))
    return found


def sign_in(web: WebServer, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=web.url, timeout=15)
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.text
    return client


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/jobs").text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_everything_but_health_and_metrics_needs_authentication(shared_web):
    routes = _routes()
    assert len(routes) > 60  # every API endpoint and page, not a sample
    for method, path in routes:
        response = shared_web.request(method, path, auth=False, headers={"Accept": "application/json"})
        assert response.status_code == 401, (method, path, response.status_code, response.text[:200])
        assert "Bearer" in response.headers.get("www-authenticate", ""), (method, path)
    # A browser asking for a page is sent to the sign-in form, and comes back after it.
    page = shared_web.get("/jobs?status=failed", auth=False, headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fjobs%3Fstatus%3Dfailed"
    htmx = shared_web.get("/ui/jobs/rows", auth=False, headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"
    # Open: liveness, sign-in, static files; /metrics while METRICS_PUBLIC is true (the default).
    for path in ("/healthz", "/login", "/static/app.css", "/metrics"):
        assert shared_web.get(path, auth=False).status_code == 200, path
    wrong = shared_web.get("/api/v1/jobs", auth=False, headers={"Authorization": "Bearer am_not-a-real-token"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid or revoked API token"
    assert shared_web.get("/api/v1/me").json() == {"username": "API_TOKEN", "role": "admin", "via": "token"}


def test_metrics_can_require_a_token(tmp_path):
    web = WebServer(app_env(tmp_path / "data", UNREACHABLE_REDIS, metrics_public="false")).start()
    try:
        assert web.get("/metrics", auth=False).status_code == 401
        assert web.get("/metrics").status_code == 200
    finally:
        web.stop()


def test_session_cookie_csrf_and_sign_out(fallback_web):
    client = sign_in(fallback_web)
    cookie = next(c for c in client.cookies.jar if c.name == "assetmon_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite").lower() == "lax"
    assert not cookie.secure  # plain HTTP here; see the HTTPS test below
    assert client.get("/api/v1/me").json()["via"] == "session"

    # A state-changing request without the session's CSRF token is refused and changes nothing.
    before = len(client.get("/api/v1/jobs").json()["jobs"])
    refused = client.post("/api/v1/jobs/trigger/health_check", json={})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert (
        client.post("/api/v1/jobs/trigger/health_check", json={}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    )
    assert len(client.get("/api/v1/jobs").json()["jobs"]) == before

    token = csrf_of(client)
    assert client.post("/api/v1/jobs/trigger/health_check", json={}, headers={"X-CSRF-Token": token}).status_code == 202
    # ...also as a form field, as the plain HTML forms send it.
    form = client.post(
        "/ui/jobs/trigger",
        data={"task": "health_check", "kwargs": "{}", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert form.status_code == 200 and "Queued" in form.text
    # Another site's page cannot post even with a valid token (a browser names the origin).
    cross = client.post(
        "/api/v1/jobs/trigger/health_check", json={}, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert cross.status_code == 403

    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/api/v1/me").status_code == 401  # the session is gone on the server too


def test_cookie_is_secure_behind_https(fallback_web):
    # uvicorn trusts X-Forwarded-Proto from a proxy on this machine: the page is served over HTTPS.
    response = httpx.post(
        fallback_web.url + "/login",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


def test_viewer_reads_but_cannot_reveal_or_change_settings(fallback_web, data_dir):
    created = fallback_web.post(
        "/api/v1/users", json={"username": "vera", "password": "viewer-pass-1", "role": "viewer"}
    )
    assert created.status_code == 201, created.text
    viewer = sign_in(fallback_web, "vera", "viewer-pass-1")
    token = csrf_of(viewer)
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    for path in ("/", "/targets", "/scans", "/secrets", "/events", "/jobs", "/settings"):
        assert viewer.get(path).status_code == 200, path
    settings_page = viewer.get("/settings").text
    assert "Add user" not in settings_page and "Create token" not in settings_page
    attempts = [
        ("/ui/secrets/findings/1/reveal", {}),
        ("/api/v1/secrets/findings/1/reveal", {}),
        ("/ui/settings/users", {"username": "mallory", "password": "mallory-pass-1", "role": "admin"}),
        ("/ui/settings/tokens", {"name": "mine", "role": "admin"}),
        ("/ui/settings/channels", {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
        ("/api/v1/notifications", None),
        ("/api/v1/users", None),
    ]
    for path, data in attempts:
        response = (
            viewer.post(path, data=data, headers=headers)
            if data is not None
            else viewer.post(path, json={"kind": "webhook", "url": "http://127.0.0.1:9/x"}, headers=headers)
        )
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
    assert [u["username"] for u in fallback_web.get("/api/v1/users").json()["users"]] == ["admin", "vera"]
    assert fallback_web.get("/api/v1/notifications").json()["count"] == 0

    # A viewer API token reads and cannot write either.
    made = fallback_web.post("/api/v1/tokens", json={"name": "grafana", "role": "viewer"}).json()
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert fallback_web.get("/api/v1/jobs", auth=False, headers=bearer).status_code == 200
    assert (
        fallback_web.post("/api/v1/jobs/trigger/health_check", auth=False, headers=bearer, json={}).status_code == 403
    )
    assert fallback_web.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    assert fallback_web.get("/api/v1/jobs", auth=False, headers=bearer).status_code == 401


def test_sign_in_is_throttled(fallback_web):
    url = fallback_web.url + "/login"
    for _ in range(5):
        assert httpx.post(url, data={"username": "admin", "password": "wrong-guess"}).status_code == 401
    locked = httpx.post(url, data={"username": "admin", "password": ADMIN_PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in locked.text
    audit = fallback_web.get("/api/v1/audit?action=auth.login_failed").json()
    assert audit["count"] == 5


@pytest.fixture
def fresh_web(tmp_path):
    web = WebServer(app_env(tmp_path / "data", UNREACHABLE_REDIS, admin_password="")).start()
    yield web
    web.stop()


def test_first_run_creates_the_admin_in_the_browser_form(fresh_web, tmp_path):
    client = httpx.Client(base_url=fresh_web.url, timeout=15, follow_redirects=False)
    assert client.get("/login").headers["location"] == "/setup"
    code = (tmp_path / "data" / "setup-code").read_text().strip()
    assert code in fresh_web.log.read_text()
    # From another machine (as a proxy on this one reports it) the setup code is required.
    remote = {"X-Forwarded-For": "203.0.113.7"}
    form = {"username": "root", "password": "first-admin-pw", "password2": "first-admin-pw"}
    assert "Setup code" in client.get("/setup", headers=remote).text
    assert client.post("/setup", data=form, headers=remote).status_code == 403
    assert client.post("/setup", data=form | {"password2": "different-pw"}).status_code == 422
    assert client.post("/setup", data=form | {"password": "short", "password2": "short"}).status_code == 422
    done = client.post("/setup", data=form | {"code": code}, headers=remote)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get("/api/v1/me").json() == {"username": "root", "role": "admin", "via": "session"}
    assert not (tmp_path / "data" / "setup-code").exists()
    # Only once: afterwards /setup sends people to sign in.
    again = httpx.post(fresh_web.url + "/setup", data={"username": "eve", "password": "eve-password-1"})
    assert again.status_code == 303 and again.headers["location"] == "/login"
    assert [u["username"] for u in fresh_web.get("/api/v1/users").json()["users"]] == ["root"]


def test_users_create_on_the_command_line(fresh_web):
    env = fresh_web.env
    made = run_cli(env, "users", "create", "ops", "--role", "admin", "--password-stdin", input="ops-password-1\n")
    assert made.returncode == 0, made.stderr
    bad = run_cli(env, "users", "create", "x y", "--password-stdin", input="long-enough-pw\n")
    assert bad.returncode == 2 and "user name" in bad.stderr
    short = run_cli(env, "users", "create", "tiny", "--password-stdin", input="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    assert sign_in(fresh_web, "ops", "ops-password-1").get("/api/v1/me").json()["role"] == "admin"
    token = run_cli(env, "tokens", "create", "ci", "--role", "viewer")
    assert token.returncode == 0 and token.stdout.startswith("am_")
    me = fresh_web.get("/api/v1/me", auth=False, headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert me.json() == {"username": "token:ci", "role": "viewer", "via": "token"}


def test_last_admin_cannot_be_removed(fallback_web):
    assert fallback_web.delete("/api/v1/users/admin").status_code == 409
    assert fallback_web.patch("/api/v1/users/admin", json={"role": "viewer"}).status_code == 409
    bad = fallback_web.post("/api/v1/users", json={"username": "<script>", "password": "long-enough-pw"})
    assert bad.status_code == 422 and "user name" in bad.json()["detail"]


def test_errors_are_pages_for_people_and_json_for_programs(shared_web):
    client = sign_in(shared_web)
    page = client.get("/targets/999", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "Not found" in page.text and "no target" in page.text.lower() and "Traceback" not in page.text
    assert "Content-Security-Policy" in page.headers
    api = client.get("/api/v1/targets/999")
    assert api.status_code == 404 and "target" in api.json()["detail"]
    # An id no database integer can hold is refused before any query: 422, never a 500.
    huge = "9" * 25
    for path in (f"/targets/{huge}", f"/secrets/{huge}", f"/events?target_id={huge}"):
        answer = client.get(path, headers={"Accept": "text/html"})
        assert answer.status_code == 422 and "Traceback" not in answer.text, (path, answer.status_code)
