"""Real processes for tests: redis-server, Celery workers, the web server, start.sh.

Everything binds 127.0.0.1 on a free port and lives in a temp dir; every process
runs in its own session so a test can kill it (or its whole group) for real.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# The admin bearer token of every AssetMon process a test starts (API_TOKEN): made up per test run.
API_TOKEN = "test-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
# ADMIN_PASSWORD: every web server a test starts has the admin "admin" with this password.
ADMIN_USER, ADMIN_PASSWORD = "admin", "pw-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing is not up yet
            last_exc = exc
        time.sleep(interval)
    detail = f" (last error: {last_exc})" if last_exc else ""
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}{detail}")


def spawn(cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen:
    """Start a process in its own session, output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        if proc is not None:
            kill_group(proc)
        return
    kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait(timeout=5)
    kill_group(proc)  # leftovers in the group


class RedisServer:
    """redis-server on 127.0.0.1; with `password` it requires AUTH, with `tls` (cert, key, CA files) it
    speaks only TLS (as a Redis shared by several hosts should)."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; run ./setup_tools.sh")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password, self.tls = password, tls
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={self.tls[2]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        cmd = ["redis-server", "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", "", "--appendonly", "no"]
        cmd += ["--protected-mode", "yes"]
        if self.tls:
            cert, key, ca = self.tls
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert)]
            cmd += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = spawn(cmd, self.workdir / "redis.log")
        wait_for(self.ping, 10, what=f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        if self.password or self.tls:
            import redis

            try:
                return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
            except redis.RedisError:
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None


# Compiled secret-rule databases, shared by every test process (keyed by the rules' digest).
RULE_CACHE = Path(tempfile.gettempdir()) / f"assetmon-test-rule-cache-{os.getuid()}"


def app_env(data_dir: Path, redis_url: str, **extra: Any) -> dict[str, str]:
    """Environment for AssetMon processes: short liveness timings so failures show within seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSETMON_", "DATABASE_URL"))}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "REDIS_URL": redis_url,
            "LOG_LEVEL": "info",
            "JOB_HEARTBEAT_SECONDS": "0.5",
            "JOB_STALE_SECONDS": "4",
            "REAPER_INTERVAL_SECONDS": "1",
            "BROKER_PROBE_CACHE_SECONDS": "0.5",
            "WORKER_SHUTDOWN_TIMEOUT": "10",
            "WORKER_NICE": "0",
            "PYTHONUNBUFFERED": "1",
            "API_TOKEN": API_TOKEN,
            "SECRETS_CACHE_DIR": str(RULE_CACHE),  # the rules compile once per test run, not per process
            "ADMIN_USER": ADMIN_USER,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )
    database_url = test_database_url(data_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


# The PostgreSQL server of this test session when the suite runs with `--db postgres` (see conftest).
POSTGRES: Any = None


def test_database_url(data_dir: Path) -> str:
    """DATABASE_URL for the processes of a data dir: "" (SQLite in the data dir) or its own PostgreSQL database."""
    return POSTGRES.database_for(str(Path(data_dir).resolve())) if POSTGRES is not None else ""


class Worker:
    def __init__(self, env: dict[str, str], name: str = "w1", concurrency: int = 2, queues: str | None = None) -> None:
        self.env, self.name, self.concurrency, self.queues = env, name, concurrency, queues
        self.proc: subprocess.Popen | None = None
        self.log = Path(env["DATA_DIR"]) / f"worker-{name}.log"

    def start(self, wait: bool = True) -> Worker:
        Path(self.env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        cmd = [str(ROOT / "start_worker.sh"), "--name", self.name, "--concurrency", str(self.concurrency)]
        if self.queues:
            cmd += ["--queues", self.queues]
        self.proc = spawn(cmd, self.log, cwd=ROOT, env=self.env)
        if wait:
            wait_for(lambda: "ready." in self.log.read_text(errors="replace"), 60, what=f"worker {self.name} ready")
        return self

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != self.proc.pid]

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop(self.proc, timeout=20)


class WebServer:
    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = dict(env, PORT=str(self.port), HOST="127.0.0.1")
        self.proc: subprocess.Popen | None = None
        self.log = Path(env["DATA_DIR"]) / f"web-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebServer:
        Path(self.env["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.proc = spawn([str(ROOT / "start_web.sh")], self.log, cwd=ROOT, env=self.env)
        wait_for(lambda: self.get("/healthz").status_code == 200, 60, what="web server /healthz")
        return self

    def client(self, auth: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15, headers=AUTH if auth else None)

    def request(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        """A request as the admin API token (auth=False: as nobody)."""
        headers = {**(AUTH if auth else {}), **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, timeout=15, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def health(self) -> dict[str, Any]:
        return self.get("/healthz").json()

    def trigger(self, task: str, **kwargs: Any) -> dict[str, Any]:
        response = self.post(f"/api/v1/jobs/trigger/{task}", json=kwargs)
        assert response.status_code == 202, response.text
        return response.json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/api/v1/jobs/{job_id}").json()

    def wait_job(self, job_id: str, states=("succeeded", "failed", "cancelled"), timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            lambda: (j := self.job(job_id))["status"] in states and j, timeout, what=f"job {job_id} to reach {states}"
        )

    def stop(self) -> None:
        stop(self.proc)


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "assetmon"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def run_python(env: dict[str, str], code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "python"), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def processes_with_env(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment contains `marker` (to prove nothing was left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                status = (entry / "status").read_text()
                if "State:\tZ" in status:
                    continue
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return found
