"""The Settings page in a real headless Chromium: a notification channel with a test message that
reaches a local receiver, a new user, an API token shown once and revoked, a schedule; bad input is
explained next to the form and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.support.receiver import Receiver
from tests.web.conftest import login, shot

pytestmark = pytest.mark.browser


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def test_channels_users_tokens_and_schedules(fallback_web, receiver, page):
    base = fallback_web.url
    assert fallback_web.post("/api/v1/targets", json={"name": "acme", "domains": ["acme.test"]}).status_code == 201
    login(page, base, then="/settings")

    # A channel: a refused URL first (the message says why), then a local webhook and a test message.
    page.fill("#channels input[name=url]", "ftp://127.0.0.1/x")
    page.click("#channels button:text('Add channel')")
    page.wait_for_selector("#channels .error")
    assert fallback_web.get("/api/v1/notifications").json()["count"] == 0
    page.fill("#channels input[name=url]", receiver.url + "/hook")
    page.fill("#channels input[name=secret]", "s3cret-for-hmac")
    page.click("#channels button:text('Add channel')")
    page.wait_for_selector("#channels td:text('webhook')")
    page.click("#channels button:text('Send test')")
    posts = receiver.wait(1)
    assert posts[0].json()["event"]["type"] == "test"
    assert any(h.startswith("x-assetmon-signature") for h in posts[0].headers)
    assert "s3cret-for-hmac" not in page.content()

    # A schedule: too frequent is refused; an hour is saved.
    page.select_option("#schedules select[name=mode]", "every")
    page.fill("#schedules input[name=every_minutes]", "1")
    page.click("#schedules button:text('Save')")
    page.wait_for_selector("#schedules .error")
    page.fill("#schedules input[name=every_minutes]", "60")
    page.click("#schedules button:text('Save')")
    page.wait_for_selector("#schedules td:text('every 60.0 min')")

    # A user: a user name with a space is refused (the server says why); then a viewer who can sign in.
    page.fill("#users input[name=username]", "vic tor")
    page.fill("#users form.row-form input[name=password]", "vic-password-1")
    page.click("#users button:text('Add user')")
    page.wait_for_selector("#users .error")
    page.fill("#users input[name=username]", "vic")
    page.fill("#users form.row-form input[name=password]", "vic-password-1")
    page.click("#users button:text('Add user')")
    page.wait_for_selector("#users tr[data-user=vic]")
    signed = httpx.post(base + "/login", data={"username": "vic", "password": "vic-password-1"})
    assert signed.status_code == 303

    # A token: shown once, works, then revoked.
    page.fill("#tokens input[name=name]", "grafana")
    page.click("#tokens button:text('Create token')")
    token = page.locator("#new-token").inner_text().strip()
    assert token.startswith("am_")
    me = httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"username": "token:grafana", "role": "viewer", "via": "token"}
    shot(page, "settings")
    page.click("#tokens button:text('Revoke')")
    page.wait_for_selector("#tokens .ok")
    assert httpx.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    # Every change is in the audit log.
    actions = {e["action"] for e in fallback_web.get("/api/v1/audit").json()["entries"]}
    assert {"channel.create", "schedule.set", "user.create", "token.create", "token.revoke"} <= actions
