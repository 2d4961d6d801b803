"""The README's two-host deployment, on loopback: the web server with its own data dir, PostgreSQL and a
Redis that requires a password and speaks only TLS; a worker with a data dir of its own (another host
shares nothing but DATABASE_URL and REDIS_URL) runs the scans."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from tests.support.processes import RedisServer, WebServer, Worker, app_env, wait_for
from tests.support.tlslab import make_cert


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.destroy()


@pytest.fixture
def secure_redis(tmp_path: Path) -> Iterator[RedisServer]:
    cert = make_cert(["127.0.0.1"])
    files = tmp_path / "tls"
    files.mkdir()
    (files / "redis.crt").write_bytes(cert.cert_pem)
    (files / "redis.key").write_bytes(cert.key_pem)
    (files / "ca.crt").write_bytes(cert.ca_pem or b"")
    server = RedisServer(
        tmp_path / "redis",
        password="pw-" + "x" * 20,  # made up for this test
        tls=(files / "redis.crt", files / "redis.key", files / "ca.crt"),
    ).start()
    yield server
    server.stop()


def test_web_and_a_worker_on_another_host_share_postgres_and_a_tls_redis_with_auth(
    tmp_path: Path, postgres: PostgresServer, secure_redis: RedisServer
):
    database = postgres.create_database("shared")
    web_env = app_env(tmp_path / "host-a", secure_redis.url, database_url=database)
    worker_env = app_env(tmp_path / "host-b", secure_redis.url, database_url=database)
    listener = socket.create_server(("127.0.0.33", 0))
    port = listener.getsockname()[1]
    worker = Worker(worker_env, name="remote1", concurrency=1).start()
    web = WebServer(web_env).start()
    try:
        health = wait_for(lambda: (h := web.health())["mode"] == "celery" and h, 30, what="celery mode")
        assert health["redis"] == "ok" and health["workers"] == 1, health
        [node] = web.get("/api/v1/jobs/queues").json()["queues"]["scans"]["workers"]
        assert node.startswith("remote1@")
        started = web.post(
            "/api/v1/scans", json={"target": "127.0.0.33", "modules": ["ports"], "options": {"ports": str(port)}}
        ).json()
        scan = wait_for(
            lambda: (s := web.get(f"/api/v1/scans/{started['scan_id']}").json())["status"] == "succeeded" and s,
            60,
            what="the scan on the remote worker",
        )
        assert scan["result"]["hosts"][0]["open_ports"] == [port]
        job = web.get(f"/api/v1/jobs/{started['job_id']}").json()
        assert job["backend"] == "celery"
        # The worker's host wrote nothing of the scan locally: it all went to PostgreSQL.
        assert not list((tmp_path / "host-b").glob("*.db"))
    finally:
        web.stop()
        worker.stop()
        listener.close()

    # Without the password, Redis refuses: the web server falls back and says why, password not shown.
    wrong = secure_redis.url.replace(secure_redis.password or "", "not-the-password")
    web = WebServer(app_env(tmp_path / "host-c", wrong, database_url=database)).start()
    try:
        health = web.health()
        assert health["mode"] == "fallback" and "not-the-password" not in str(health), health
    finally:
        web.stop()
