"""Secrets at rest: stored values are sealed (Fernet) under a key kept out of the database; reveal
unseals; a rotation re-seals everything; the database file holds no secret in clear."""

from __future__ import annotations

import random

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import select

from app.db import session_scope
from app.errors import SealError
from app.models import SecretFinding
from app.secrets import sealing, store
from app.secrets.engine import Matcher, scan_bytes
from app.secrets.rules import fake_secret, load_rules
from app.settings import get_settings
from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import RULE_CACHE, app_env, run_cli

RULES = load_rules()


@pytest.fixture(autouse=True)
def fresh_keys():
    sealing.forget_keys()
    yield
    sealing.forget_keys()


def stored_secret(seed: str) -> tuple[int, str]:
    value = fake_secret(RULES.by_id("stripe-secret-key"), random.Random(seed))
    findings = scan_bytes(Matcher(RULES, RULE_CACHE), f'const stripe = require("stripe")("{value}");'.encode())
    store.record(findings, "https://shop.lab.test/app.js", None)
    with session_scope() as session:
        row = session.exec(select(SecretFinding).where(SecretFinding.fingerprint == findings[0].fingerprint)).one()
        return row.id, value


def raw_values() -> list[str]:
    with session_scope() as session:
        return [row.value for row in session.exec(select(SecretFinding)).all()]


def database_bytes(data_dir) -> bytes:
    return b"".join(path.read_bytes() for path in data_dir.glob("assetmon.db*"))


def test_values_are_sealed_and_revealed(settings_env):
    finding_id, value = stored_secret("a")
    assert all(v.startswith(sealing.PREFIX) and value not in v for v in raw_values())
    assert store.reveal(finding_id, "alice") == value
    key = sealing.key_path()
    assert key.exists() and key.stat().st_mode & 0o777 == 0o600


@pytest.mark.sqlite_only
def test_the_database_file_holds_no_secret_in_clear(settings_env):
    values = [stored_secret(str(seed))[1] for seed in range(5)]
    with session_scope() as session:  # let SQLite write it all out, the WAL included
        session.connection().exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
    data = database_bytes(settings_env)
    assert data and not [v for v in values if v.encode() in data]


def test_rotation_reseals_everything_under_a_new_key(settings_env):
    found = [stored_secret(str(seed)) for seed in range(3)]
    before = sealing.key_path().read_bytes()
    assert sealing.rotate() == 3
    assert sealing.key_path().read_bytes() != before
    assert not sealing.key_path().with_name("secrets.key.rotating").exists()
    for finding_id, value in found:
        assert store.reveal(finding_id, "alice") == value
    old = Fernet(before.strip())
    for stored in raw_values():  # the old key opens nothing any more
        with pytest.raises(InvalidToken):
            old.decrypt(stored.removeprefix(sealing.PREFIX).encode())


def test_an_interrupted_rotation_resumes_with_its_key(settings_env):
    finding_id, value = stored_secret("r")
    sealing.key_path().with_name("secrets.key.rotating").write_bytes(Fernet.generate_key())
    assert store.reveal(finding_id, "alice") == value  # both keys open values mid-rotation
    assert sealing.rotate() == 1 and store.reveal(finding_id, "alice") == value


def test_values_stored_in_clear_are_sealed_at_start(settings_env):
    finding_id, value = stored_secret("legacy")
    with session_scope() as session:
        row = session.get(SecretFinding, finding_id)
        row.value = value  # as an older version stored it
        session.add(row)
    assert store.reveal(finding_id, "alice") == value
    assert sealing.seal_stored() == 1 and sealing.seal_stored() == 0
    assert all(v.startswith(sealing.PREFIX) for v in raw_values()) and store.reveal(finding_id, "alice") == value


def test_a_wrong_or_missing_key_is_a_clear_error(settings_env, monkeypatch):
    finding_id, _ = stored_secret("k")
    sealing.key_path().write_bytes(Fernet.generate_key())  # the key was lost and replaced
    sealing.forget_keys()
    with pytest.raises(SealError, match="sealed with another key"):
        store.reveal(finding_id, "alice")
    monkeypatch.setenv("SECRETS_KEY", "not-a-key")
    get_settings.cache_clear()
    with pytest.raises(SealError, match="SECRETS_KEY is not a Fernet key"):
        sealing.seal("x")


def test_a_key_from_the_settings_is_used_and_not_rotated_by_us(settings_env, monkeypatch):
    monkeypatch.setenv("SECRETS_KEY", Fernet.generate_key().decode())
    get_settings.cache_clear()
    finding_id, value = stored_secret("env")
    assert not sealing.key_path().exists() and store.reveal(finding_id, "alice") == value
    with pytest.raises(SealError, match="SECRETS_KEY is set"):
        sealing.rotate()


def test_rotate_key_and_new_key_on_the_command_line(tmp_path):
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    done = run_cli(env, "secrets", "rotate-key")
    assert done.returncode == 0 and "0 stored secret(s) sealed under a new key" in done.stdout, done.stderr
    key = run_cli(env, "secrets", "new-key").stdout.strip()
    assert Fernet(key.encode())
    refused = run_cli(dict(env, SECRETS_KEY=key), "secrets", "rotate-key")
    assert refused.returncode == 2 and "SECRETS_KEY is set" in refused.stderr and "Traceback" not in refused.stderr
