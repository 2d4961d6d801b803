"""A real PostgreSQL server for tests: Debian's binaries, a throw-away cluster in a temp dir, a free port.

The server listens on 127.0.0.1 only and trusts local connections (it lives for one test session).
Durability is switched off (fsync, synchronous_commit): the cluster is thrown away anyway, and the
suite creates a fresh database for every test's data directory.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.support.processes import free_port, wait_for

SUPERUSER = "assetmon"


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(versions[-1]) if versions else None


def available() -> bool:
    return _bin_dir() is not None


class PostgresServer:
    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed; run ./setup_tools.sh --with-test-tools")
        self.bin = bin_dir
        # PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user, so it
        # lives in a directory of its own (pytest's temp dirs are private to root).
        self._as_root = os.geteuid() == 0
        self.workdir = Path(tempfile.mkdtemp(prefix="assetmon-pg-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.datadir = self.workdir / "cluster"
        self.log = self.workdir / "postgres.log"
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._databases: set[str] = set()
        if self._as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            os.chmod(self.workdir, 0o700)

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.workdir
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        if not (self.datadir / "PG_VERSION").exists():
            done = self._run(
                "initdb", "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C"
            )
            if done.returncode:
                raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.workdir}",
                "-c max_connections=400",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c timezone=UTC",
            ]
        )
        done = self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
        )
        if done.returncode:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr or done.stdout}\n{self.tail_log()}")
        wait_for(self.ping, 30, what=f"PostgreSQL on port {self.port}")
        return self

    def ping(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url().replace("+psycopg", ""), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def tail_log(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def create_database(self, name: str) -> str:
        """A new, empty database (once per name); returns its SQLAlchemy URL."""
        import psycopg

        with self._lock:
            if name not in self._databases:
                with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._databases.add(name)
        return self.url(name)

    def database_for(self, key: str) -> str:
        """The database that belongs to `key` (e.g. a test's data directory), created on first use."""
        return self.create_database("t_" + hashlib.sha256(key.encode()).hexdigest()[:20])
