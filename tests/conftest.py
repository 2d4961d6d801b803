"""Shared fixtures: an isolated data dir and settings, a real redis-server, workers and web servers."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.processes import RedisServer, WebServer, Worker, app_env, test_database_url
from tests.support.weblab import LabServer, Planted, build_js_site

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # a privileged port nothing listens on: refused at once


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default=os.environ.get("ASSETMON_TEST_DB", "sqlite"),
        help="database the AssetMon processes under test use (default: sqlite; env ASSETMON_TEST_DB)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") == "sqlite":
        return
    skip = pytest.mark.skip(reason="about SQLite itself (this run uses PostgreSQL)")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"assetmon database: {config.getoption('--db')}"


@pytest.fixture(scope="session", autouse=True)
def test_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """With --db postgres, a real PostgreSQL server for this session; every data dir gets its own database."""
    if request.config.getoption("--db") != "postgres":
        yield "sqlite"
        return
    from tests.support.postgres import PostgresServer

    server = PostgresServer().start()
    processes.POSTGRES = server
    try:
        yield "postgres"
    finally:
        processes.POSTGRES = None
        server.destroy()


def _reset_caches() -> None:
    from app import db
    from app.jobs import broker
    from app.settings import get_settings

    get_settings.cache_clear()
    broker.invalidate()
    db._engine_for.cache_clear()
    db._migrated.clear()


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """In-process settings pointing at a fresh data dir and an unreachable Redis."""
    for key in list(os.environ):
        if key in ("DATABASE_URL", "REDIS_URL", "DATA_DIR"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REDIS_URL", UNREACHABLE_REDIS)
    monkeypatch.setenv("JOB_STALE_SECONDS", "4")
    monkeypatch.setenv("SECRETS_CACHE_DIR", str(processes.RULE_CACHE))
    if database_url := test_database_url(tmp_path / "data"):
        monkeypatch.setenv("DATABASE_URL", database_url)
    _reset_caches()
    from app.db import ensure_migrated

    ensure_migrated()
    yield tmp_path / "data"
    _reset_caches()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test only (for tests that kill or restart it)."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def celery_env(data_dir: Path, redis_server: RedisServer) -> dict[str, str]:
    # Each test gets its own Redis database number space via a flush, so queues never leak between tests.
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return app_env(data_dir, redis_server.url)


@pytest.fixture
def fallback_env(data_dir: Path) -> dict[str, str]:
    return app_env(data_dir, UNREACHABLE_REDIS)


@pytest.fixture
def worker(celery_env: dict[str, str]) -> Iterator[Worker]:
    w = Worker(celery_env).start()
    yield w
    w.stop()


@pytest.fixture
def web(celery_env: dict[str, str]) -> Iterator[WebServer]:
    server = WebServer(celery_env).start()
    yield server
    server.stop()


@pytest.fixture
def fallback_web(fallback_env: dict[str, str]) -> Iterator[WebServer]:
    server = WebServer(fallback_env).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One fallback-mode web server per test process, for tests that only read or whose requests are
    refused (they write nothing, and most check that): starting a server per test is most of their time.
    A test that writes, or needs an empty database, uses `fallback_web`."""
    server = WebServer(app_env(tmp_path_factory.mktemp("shared") / "data", UNREACHABLE_REDIS)).start()
    yield server
    server.stop()


@pytest.fixture
def lab() -> Iterator[tuple[LabServer, LabServer, list[Planted]]]:
    """A small web app with planted fake secrets on 127.0.0.1, and an off-site server on 127.0.0.2."""
    site, offsite = LabServer("127.0.0.1").start(), LabServer("127.0.0.2").start()
    planted = build_js_site(site, offsite, random.Random(4))
    yield site, offsite, planted
    site.stop()
    offsite.stop()
