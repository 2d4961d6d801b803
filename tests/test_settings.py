import subprocess
import sys

import pytest
from pydantic import ValidationError

from app.settings import PROJECT_ROOT, Settings, describe_error


def test_defaults(monkeypatch):
    for key in ("REDIS_URL", "DATABASE_URL", "HOST", "PORT", "DATA_DIR", "START_REDIS"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.host == "0.0.0.0"
    assert settings.port == 8000
    assert settings.start_redis is True
    assert settings.db_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'assetmon.db'}"
    assert settings.queues == ["default", "scans", "secrets"]


def test_relative_data_dir_is_under_the_project(monkeypatch):
    monkeypatch.setenv("DATA_DIR", "var/x")
    assert Settings(_env_file=None).data_dir == PROJECT_ROOT / "var" / "x"


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [("REDIS_URL", "http://localhost", "REDIS_URL"), ("PORT", "70000", "PORT"), ("WORKER_CONCURRENCY", "0", "WORKER")],
)
def test_bad_values_are_explained(monkeypatch, key, value, needle):
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert needle in describe_error(info.value)


def test_password_is_redacted(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://:s3cret-fake@127.0.0.1:6380/0")
    settings = Settings(_env_file=None)
    assert "s3cret" not in settings.redacted_redis_url()
    assert "127.0.0.1:6380" in settings.redacted_redis_url()


def test_shell_export_for_the_start_scripts(monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "PORT": "8123", "REDIS_URL": "redis://10.0.0.5:6379/0"}
    out = subprocess.run(
        [sys.executable, "-m", "app.settings", "--shell"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "ASSETMON_PORT=8123" in out.stdout
    assert "ASSETMON_REDIS_IS_LOCAL=0" in out.stdout


def test_shell_export_refuses_bad_settings():
    env = {"PATH": "/usr/bin:/bin", "PORT": "not-a-port"}
    out = subprocess.run(
        [sys.executable, "-m", "app.settings", "--shell"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "PORT" in out.stderr and "Traceback" not in out.stderr
