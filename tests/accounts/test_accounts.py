"""Accounts in-process, against a real database: users, sign-in throttling, sessions, API tokens and the
audit log. (The same through the web and the CLI: tests/web/test_access.py.)"""

from __future__ import annotations

import secrets

import pytest

from app.accounts import audit, sessions, tokens, users
from app.accounts.identity import token_digest
from app.errors import AccountError, LastAdmin, TokenNotFound, TooManyAttempts, UserExists, UserNotFound
from app.settings import get_settings


def password() -> str:
    return "pw-" + secrets.token_hex(8)  # made at test time


def test_users_are_checked_unique_and_the_last_admin_stays(settings_env):
    secret = password()
    admin = users.create_user("alice", secret, "admin")
    assert (admin.username, admin.role) == ("alice", "admin") and users.any_users()
    with pytest.raises(UserExists, match="taken"):
        users.create_user("ALICE", password())  # user names are unique whatever their case
    with pytest.raises(UserExists, match="first account"):
        users.create_user("bob", password(), only_if_none=True)
    for bad, message in (
        (("<script>", secret), "user name"),
        (("bob", "short"), "at least"),
        (("bob", secret, "root"), "role"),
    ):
        with pytest.raises(AccountError, match=message):
            users.create_user(*bad)
    assert [u["username"] for u in users.list_users()] == ["alice"]  # nothing half-written
    with pytest.raises(LastAdmin):
        users.delete_user("alice")
    with pytest.raises(LastAdmin):
        users.set_role("alice", "viewer")
    with pytest.raises(UserNotFound):
        users.delete_user("nobody")
    users.create_user("bob", password(), "admin")
    users.delete_user("alice")
    assert [u["username"] for u in users.list_users()] == ["bob"]


def test_sign_in_checks_the_password_and_throttles_failures(settings_env, monkeypatch):
    monkeypatch.setenv("LOGIN_MAX_FAILURES", "3")
    get_settings.cache_clear()
    secret = password()
    users.create_user("carol", secret)
    assert users.authenticate("carol", secret, "127.0.0.1").username == "carol"
    assert users.authenticate("Carol", secret, "127.0.0.1").username == "carol"
    assert users.authenticate("nobody", secret, "127.0.0.1") is None
    for _ in range(3):
        assert users.authenticate("carol", "wrong-password", "127.0.0.9") is None
    with pytest.raises(TooManyAttempts):  # locked out, even with the right password
        users.authenticate("carol", secret, "127.0.0.9")
    assert users.authenticate("carol", secret, "127.0.0.1") is not None  # another address is not


def test_sessions_are_stored_as_digests_and_revocable(settings_env):
    account = users.create_user("dave", password())
    cookie = sessions.create(account, ip="127.0.0.1", user_agent="test")
    signed = sessions.lookup(cookie)
    assert signed is not None and signed.account == account and len(signed.csrf) > 20
    assert sessions.lookup(token_digest(cookie)) is None  # what is stored does not open a session
    assert sessions.lookup("x" * 500) is None and sessions.lookup(None) is None
    sessions.revoke(cookie)
    assert sessions.lookup(cookie) is None
    sessions.create(account)
    assert sessions.revoke_user("DAVE") == 1


def test_api_tokens_are_shown_once_and_revocable(settings_env):
    described, token = tokens.create("ci", "admin")
    assert token.startswith(tokens.PREFIX) and described["prefix"] == token[:10] and token not in str(described)
    assert tokens.lookup(token) == ("token:ci", "admin")  # who it acts as, in the audit log
    assert tokens.lookup(token + "x") is None
    with pytest.raises(AccountError, match="name"):
        tokens.create("", "viewer")
    tokens.revoke(described["id"])
    assert tokens.lookup(token) is None and tokens.list_tokens() == []
    assert tokens.list_tokens(include_revoked=True)[0]["revoked"] is True
    with pytest.raises(TokenNotFound):
        tokens.revoke(described["id"])


def test_the_audit_log_keeps_who_did_what(settings_env):
    audit.record("erin", "secret.reveal", "finding 7", ip="127.0.0.1", rule="github-pat")
    audit.record("erin", "user.create", "frank")
    entries = audit.recent(action="secret.reveal")
    assert [(e["actor"], e["action"], e["subject"]) for e in entries] == [("erin", "secret.reveal", "finding 7")]
    assert len(audit.recent()) == 2
