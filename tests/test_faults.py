"""Fault injection: one real fault in the middle of a recon scan, then a check of the final state.

Every test runs real processes on loopback only: its own redis-server, Celery workers started by
./start_worker.sh, the web server, and the recon lab (tests/support/reconlab.py) grown with more
names, hosts and open ports, and scanned over a few thousand ports at a capped rate, so that the port
stage lasts several seconds and the fault lands in it. Then it checks that the scan ended succeeded
(possibly after a re-run) or failed with a reason, that no job is left queued or running, and that what
is stored (the result document, observations, secret findings, events) is the lab's ground truth, once.

Faults: a worker killed with SIGKILL; redis-server restarted without its data; PostgreSQL stopped for
10 s; a full data directory (a small tmpfs); a notification endpoint that never answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.postgres import PostgresServer
from tests.support.processes import RedisServer, WebServer, Worker, app_env, run_python, wait_for
from tests.support.receiver import Receiver
from tests.support.reconlab import NAMES, WORDS, Listener, ReconLab, close_listener

pytestmark = pytest.mark.stress

# The lab grows by these names, each on its own address with one open non-web port.
NODES = {f"node{i}": f"127.0.0.{40 + i}" for i in range(6)}
LATE = ("late", "127.0.0.50")  # a name (and port) that appears between two scans (notification test)
FILLER_PORTS = 2000  # 1..FILLER_PORTS are scanned on every host too: closed, except what listens there
FAST = {
    # ~24,000 probes at 2,000 a second: a port stage of ~12 s for the fault to land in.
    "PORT_RATE_GLOBAL": "2000",
    "SCHEDULER_TICK_SECONDS": "0.5",
    "JOB_MAX_ATTEMPTS": "3",
}
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


# --- the lab and its ground truth -----------------------------------------------------------------------------


def _listening_ports() -> set[int]:
    """Ports something on this machine listens on now (any address): left out of the filler range."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _spec(ports: set[int]) -> str:
    """'1-21,23-2000,40123' for a set of ports."""
    ordered, parts = sorted(ports), []
    start = prev = ordered[0]
    for port in [*ordered[1:], None]:
        if port is not None and port == prev + 1:
            prev = port
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if port is not None:
            start = prev = port
    return ",".join(parts)


class FaultLab:
    """The recon lab plus NODES (and, once `reveal_late()` is called, LATE), with its ground truth."""

    def __init__(self, tmp_path: Path) -> None:
        self.recon = ReconLab(tmp_path / "words.txt")
        self.nodes: dict[str, Listener] = {}
        self.late: Listener | None = None
        self.late_visible = False
        try:
            for name, address in NODES.items():
                self.recon.dns.add(name, {"A": [address]})
                self.nodes[address] = Listener(address).start()
            self.late = Listener(LATE[1]).start()  # listening from the start; its name resolves later
            self.recon.wordlist.write_text("\n".join([*WORDS, *NODES, LATE[0]]) + "\n")
            lab = self.recon
            ours = {*lab.web_ports, lab.extra.port, lab.excluded.port, self.late.port}
            ours |= {listener.port for listener in self.nodes.values()}
            busy = _listening_ports() - ours
            self.ports = _spec({p for p in range(1, FILLER_PORTS + 1) if p not in busy} | ours)
        except BaseException:
            self.stop()
            raise

    def reveal_late(self) -> None:
        self.recon.dns.add(LATE[0], {"A": [LATE[1]]})
        self.late_visible = True

    def env(self) -> dict[str, str]:
        return self.recon.env() | FAST

    def target(self) -> dict[str, Any]:
        body = self.recon.target()
        body["scan_options"]["ports"] = self.ports
        return body

    def truth(self) -> dict[str, Any]:
        lab = self.recon
        names = set(NAMES) | {f"{name}.lab.test" for name in NODES}
        hosts = {"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.14", "127.0.0.15", *NODES.values()}
        ports = {
            ("127.0.0.10", lab.web.port),
            ("127.0.0.11", lab.api.port),
            ("127.0.0.11", lab.extra.port),
            ("127.0.0.12", lab.tls.port),
        } | {(address, listener.port) for address, listener in self.nodes.items()}
        if self.late_visible and self.late is not None:
            names.add(f"{LATE[0]}.lab.test")
            hosts.add(LATE[1])
            ports.add((LATE[1], self.late.port))
        services = {
            ("127.0.0.10", lab.web.port, "http", "www.lab.test"),
            ("127.0.0.11", lab.api.port, "http", "api.lab.test"),
            ("127.0.0.11", lab.api.port, "http", "legacy-ct.lab.test"),
            ("127.0.0.12", lab.tls.port, "https", "app.lab.test"),
            ("127.0.0.12", lab.tls.port, "https", "portal-x9.lab.test"),
        }
        secrets = sorted((p.path, p.rule) for p in lab.planted)
        return {"names": names, "hosts": hosts, "ports": ports, "services": services, "secrets": secrets}

    def stop(self) -> None:
        for listener in [*self.nodes.values(), self.late]:
            if listener is not None:
                listener.stop()
        self.recon.stop()


@pytest.fixture
def fault_lab(tmp_path: Path) -> Iterator[FaultLab]:
    lab = FaultLab(tmp_path)
    yield lab
    lab.stop()


# --- processes ------------------------------------------------------------------------------------------------


class Stack:
    """A web server and a Celery worker on one environment; stops whatever it started."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.web: WebServer | None = None
        self.workers: list[Worker] = []

    def start(self) -> Stack:
        self.web = WebServer(self.env).start()
        self.add_worker("w1")
        wait_for(lambda: self.web.health()["mode"] == "celery", 30, what="celery mode")
        return self

    def add_worker(self, name: str) -> Worker:
        worker = Worker(self.env, name=name)
        self.workers.append(worker)
        return worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()
        if self.web is not None:
            with contextlib.suppress(Exception):
                self.web.stop()

    def print_logs(self, lines: int = 80) -> None:
        """The end of each process's log (pytest shows it when the test fails), without the ticks' chatter."""
        logs = [w.log for w in self.workers] + ([self.web.log] if self.web else [])
        for log in logs:
            with contextlib.suppress(OSError):
                text = [ln for ln in log.read_text(errors="replace").splitlines() if "scheduler_tick" not in ln]
                print(f"----- {log.name} -----", *text[-lines:], sep="\n")


@contextlib.contextmanager
def running(env: dict[str, str]) -> Iterator[Stack]:
    stack = Stack(env)
    try:
        yield stack.start()
    except BaseException:
        stack.print_logs()
        raise
    finally:
        stack.stop()


# --- scans ----------------------------------------------------------------------------------------------------


def create_target(web: WebServer, lab: FaultLab) -> int:
    created = web.post("/api/v1/targets", json=lab.target())
    assert created.status_code == 201, created.text
    return created.json()["target_id"]


def start_scan(web: WebServer, target: str = "lab") -> str:
    started = web.post("/api/v1/scans", json={"target": target})
    assert started.status_code == 202, started.text
    return started.json()["scan_id"]


def get_scan(web: WebServer, scan_id: str) -> dict[str, Any]:
    response = web.get(f"/api/v1/scans/{scan_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_mid_ports(web: WebServer, scan_id: str) -> dict[str, Any]:
    """Wait until the scan is well into its port stage (the fault goes there)."""

    def in_ports() -> dict[str, Any] | None:
        scan = get_scan(web, scan_id)
        assert scan["status"] in ACTIVE, f"the scan ended before the fault: {scan['status']} {scan['message']}"
        return scan if scan["stage"] == "ports" and scan["progress"] >= 40 else None

    return wait_for(in_ports, 90, interval=0.1, what="the scan's port stage")


def wait_final(web: WebServer, scan_id: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: (s := get_scan(web, scan_id))["status"] in FINAL and s, timeout, interval=0.5, what="scan to end"
    )


def wait_no_active_jobs(web: WebServer, timeout: float = 60) -> None:
    """No job left queued or running (the scheduler's own short jobs included)."""

    def idle() -> bool:
        listed = [web.get("/api/v1/jobs", params={"status": s, "limit": 1000}).json() for s in ACTIVE]
        return all(answer["count"] == 0 for answer in listed)

    wait_for(idle, timeout, interval=0.5, what="no job queued or running")


_STATE = """
import json
from sqlmodel import select
from app.db import session_scope
from app.models import Event, Observation, Scan, SecretFinding
tid = {tid}
with session_scope() as s:
    out = {{
        "observations": [[o.kind, o.key, o.present, o.value] for o in s.exec(select(Observation).where(Observation.target_id == tid))],
        "events": [e.type for e in s.exec(select(Event).where(Event.target_id == tid))],
        "scans": [[sc.id, sc.job_id] for sc in s.exec(select(Scan).where(Scan.target_id == tid))],
        "secrets": [[f.asset, f.fingerprint, f.rule] for f in s.exec(select(SecretFinding))],
    }}
print(json.dumps(out))
"""


def stored(env: dict[str, str], target_id: int) -> dict[str, Any]:
    """What the database holds for the target, read by a separate process (SQLite or PostgreSQL alike)."""
    done = run_python(env, _STATE.format(tid=target_id))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_result(scan: dict[str, Any], lab: FaultLab) -> None:
    """The scan's document is the lab's ground truth: nothing lost, nothing twice, nothing out of scope."""
    truth, doc = lab.truth(), scan["result"]
    names = [s["name"] for s in doc["subdomains"]]
    assert sorted(names) == sorted(truth["names"])
    assert sorted(h["host"] for h in doc["hosts"]) == sorted(truth["hosts"])
    assert sorted((h["host"], p) for h in doc["hosts"] for p in h["open_ports"]) == sorted(truth["ports"])
    services = [(s["host"], s["port"], s["scheme"], s["hostname"]) for s in doc["services"]]
    assert sorted(services) == sorted(truth["services"])
    assert sorted((urlsplit(s["url"]).path, s["rule"]) for s in doc["secrets"]) == truth["secrets"]
    assert lab.recon.excluded.accepted == 0 and lab.recon.offsite.requests == []


def check_stored(env: dict[str, str], target_id: int, lab: FaultLab, events: dict[str, int]) -> dict[str, Any]:
    """The observations, secret findings and events in the database: the ground truth, each once."""
    truth, state = lab.truth(), stored(env, target_id)
    keys = Counter((kind, key) for kind, key, _present, _value in state["observations"])
    assert [k for k, n in keys.items() if n > 1] == []  # no duplicated rows
    by_kind: dict[str, list[Any]] = {}
    for kind, key, present, value in state["observations"]:
        assert present, (kind, key)
        by_kind.setdefault(kind, []).append((key, value))
    assert sorted(k for k, _ in by_kind["subdomain"]) == sorted(truth["names"])
    assert sorted(k for k, _ in by_kind["port"]) == sorted(f"{h}:{p}" for h, p in truth["ports"])
    services = [
        (v["host"], v["port"], urlsplit(v["url"]).scheme, urlsplit(v["url"]).hostname) for _, v in by_kind["service"]
    ]
    assert sorted(services) == sorted(truth["services"])
    assert len(by_kind["secret"]) == len(truth["secrets"])
    findings = Counter((asset, fingerprint) for asset, fingerprint, _rule in state["secrets"])
    assert [f for f, n in findings.items() if n > 1] == []
    assert sorted(rule for _a, _f, rule in state["secrets"]) == sorted(rule for _p, rule in truth["secrets"])
    assert dict(Counter(state["events"])) == events
    return state


# --- the faults -----------------------------------------------------------------------------------------------


@pytest.fixture
def redis_for_test(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_worker_killed_mid_scan_is_run_again_once(fault_lab, data_dir, redis_for_test):
    env = app_env(data_dir, redis_for_test.url, **fault_lab.env())
    with running(env) as stack:
        web = stack.web
        tid = create_target(web, fault_lab)
        scan_id = start_scan(web)
        before = web.job(wait_mid_ports(web, scan_id)["job_id"])
        stack.workers[0].kill()  # SIGKILL to the whole process group: the worker and its pool
        stack.add_worker("w2")
        scan = wait_final(web, scan_id)
        assert scan["status"] == "succeeded", scan
        job = web.job(scan["job_id"])
        assert job["attempts"] >= 2 and job["runner"] != before["runner"], job  # it ran again
        check_result(scan, fault_lab)
        wait_no_active_jobs(web)
        state = check_stored(env, tid, fault_lab, {"scan.baseline": 1})
        assert [sc[0] for sc in state["scans"]] == [scan_id]


def test_redis_restarted_mid_scan(fault_lab, data_dir, redis_for_test):
    env = app_env(data_dir, redis_for_test.url, **fault_lab.env())
    with running(env) as stack:
        web = stack.web
        tid = create_target(web, fault_lab)
        scan_id = start_scan(web)
        wait_mid_ports(web, scan_id)
        redis_for_test.kill()  # gone with every message (it keeps no data on disk) ...
        redis_for_test.start()  # ... and back on the same port, empty
        scan = wait_final(web, scan_id)
        if scan["status"] == "failed":
            assert scan["message"] and "Traceback" not in scan["message"], scan
        else:
            assert scan["status"] == "succeeded", scan
            check_result(scan, fault_lab)
            check_stored(env, tid, fault_lab, {"scan.baseline": 1})
        wait_no_active_jobs(web)
        # The same worker is still there (a Redis restart must not stop it) and takes jobs through Redis again.
        assert stack.workers[0].proc.poll() is None, "the worker stopped when Redis restarted"
        wait_for(lambda: web.health()["mode"] == "celery", 60, what="celery mode after Redis came back")
        job = web.trigger("health_check")
        done = web.wait_job(job["job_id"], timeout=60)
        assert done["status"] == "succeeded" and done["result"]["worker"].startswith("w1@"), done


def test_postgres_down_for_10_seconds_mid_scan(fault_lab, data_dir, redis_for_test):
    server = PostgresServer().start()
    try:
        env = app_env(data_dir, redis_for_test.url, database_url=server.create_database("faults"), **fault_lab.env())
        with running(env) as stack:
            web = stack.web
            tid = create_target(web, fault_lab)
            scan_id = start_scan(web)
            wait_mid_ports(web, scan_id)
            server.stop()
            try:
                # The web server still answers, and says what is wrong.
                wait_for(lambda: web.health()["db"] == "unreachable", 10, what="/healthz to report the database")
                answer = web.get(f"/api/v1/scans/{scan_id}")
                assert answer.status_code == 503 and "database is unavailable" in answer.json()["detail"], answer.text
                time.sleep(10)
            finally:
                server.start()
            scan = wait_final(web, scan_id)
            if scan["status"] == "failed":
                assert scan["message"] and "Traceback" not in scan["message"], scan
            else:
                assert scan["status"] == "succeeded", scan
                check_result(scan, fault_lab)
                check_stored(env, tid, fault_lab, {"scan.baseline": 1})
            wait_no_active_jobs(web)
            assert web.health()["db"] == "ok"
    finally:
        server.destroy()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class HangingServer:
    """Accepts connections and never answers (nor closes them). Counts connections."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def stop(self) -> None:
        close_listener(self.sock)
        for conn in self.held:
            conn.close()


def test_hanging_notification_endpoint(fault_lab, data_dir, redis_for_test):
    notify = {"NOTIFY_TIMEOUT_SECONDS": "1", "NOTIFY_BACKOFF_SECONDS": "1", "NOTIFY_MAX_ATTEMPTS": "3"}
    env = app_env(data_dir, redis_for_test.url, **fault_lab.env(), **notify)
    hanging, receiver = HangingServer(), Receiver("127.0.0.1").start()
    try:
        with running(env) as stack:
            web = stack.web
            good = web.post(
                "/api/v1/notifications", json={"kind": "webhook", "url": receiver.url + "/hook", "events": []}
            )
            bad = web.post("/api/v1/notifications", json={"kind": "webhook", "url": hanging.url, "events": []})
            assert good.status_code == bad.status_code == 201, (good.text, bad.text)
            good_id, bad_id = good.json()["id"], bad.json()["id"]
            tid = create_target(web, fault_lab)
            first = wait_final(web, start_scan(web))
            assert first["status"] == "succeeded", first
            # The baseline event's deliveries are due now; the second scan runs while one of them hangs.
            fault_lab.reveal_late()
            second_id = start_scan(web)
            second = wait_final(web, second_id)
            assert second["status"] == "succeeded", second
            check_result(second, fault_lab)

            def deliveries(channel_id: int) -> list[dict[str, Any]]:
                answer = web.get("/api/v1/notifications/deliveries", params={"channel_id": channel_id, "limit": 500})
                return answer.json()["deliveries"]

            expected = {"scan.baseline": 1, "subdomain.new": 1, "port.opened": 1}
            wait_for(
                lambda: sorted(d["status"] for d in deliveries(bad_id)) == ["failed"] * 3,
                60,
                what="the hanging channel's deliveries to fail",
            )
            wait_for(lambda: len(receiver.posts("/hook")) >= 3, 30, what="the good channel's deliveries")
            wait_no_active_jobs(web)
            check_stored(env, tid, fault_lab, expected)

            for delivery in deliveries(bad_id):  # each tried NOTIFY_MAX_ATTEMPTS times, each a timeout, logged
                assert delivery["attempts"] == 3 and len(delivery["log"]) == 3, delivery
                assert all("timed out" in a["error"] or "no complete answer" in a["error"] for a in delivery["log"])
            good_rows = deliveries(good_id)
            assert sorted(d["status"] for d in good_rows) == ["sent"] * 3
            assert all(d["attempts"] == 1 for d in good_rows), good_rows  # never held up by the hanging one
            # The baseline event: sent to the good channel before the hanging one had used up its attempts,
            # and those attempts went on while the second scan ran (which succeeded all the same).
            good_base, bad_base = (
                next(d for d in deliveries(c) if d["event"]["type"] == "scan.baseline") for c in (good_id, bad_id)
            )
            assert _at(good_base["updated_at"]) < _at(bad_base["updated_at"]), (good_base, bad_base)
            ran = (_at(second["created_at"]), _at(second["finished_at"]))
            assert [a for a in bad_base["log"] if ran[0] <= _at(a["at"]) <= ran[1]], (bad_base["log"], ran)
            posted = Counter(p.json()["event"]["type"] for p in receiver.posts("/hook"))
            assert posted == Counter(expected)
            assert hanging.accepted == 9  # one connection per logged attempt
            for status in ("sending", "pending"):
                assert web.get("/api/v1/notifications/deliveries", params={"status": status}).json()["count"] == 0
    finally:
        hanging.stop()
        receiver.stop()


# --- a full data directory --------------------------------------------------------------------------------------


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full."""
    path = directory / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 4096)
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        saved = tmp_path / "logs"  # the processes' logs, kept for a look after the test
        saved.mkdir(exist_ok=True)
        for log in mount.glob("*.log"):
            with contextlib.suppress(OSError):
                (saved / log.name).write_bytes(log.read_bytes())
        for _ in range(20):  # the processes using it are stopped by now; retry a busy unmount a little
            if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_data_directory_mid_scan(fault_lab, small_disk, redis_for_test):
    env = app_env(small_disk, redis_for_test.url, database_url="", **fault_lab.env())  # SQLite on the small disk
    with running(env) as stack:
        web = stack.web
        tid = create_target(web, fault_lab)
        scan_id = start_scan(web)
        wait_mid_ports(web, scan_id)
        filler = _fill(small_disk)
        try:
            # The scan fails, and says why in words: not left `running`, not a database error's text.
            scan = wait_final(web, scan_id, timeout=90)
            assert scan["status"] == "failed", scan
            assert scan["message"].startswith("the disk holding AssetMon's data is full"), scan
            assert "sqlite" not in scan["message"].lower() and "Traceback" not in scan["message"]
            health = web.get("/healthz")  # the web server still answers, and tells
            assert health.status_code == 200 and health.json()["disk"] == "full", health.text
            assert health.json()["status"] == "degraded" and "is full" in health.json()["reason"]
        finally:
            filler.unlink()
        wait_for(lambda: web.health()["disk"] == "ok", 30, what="/healthz to see the space again")
        wait_for(lambda: (small_disk / "reserved-space").exists(), 30, what="the reserve to come back")
        wait_no_active_jobs(web)
        again = wait_final(web, start_scan(web))
        assert again["status"] == "succeeded", again
        check_result(again, fault_lab)
        check_stored(env, tid, fault_lab, {"scan.baseline": 1})
