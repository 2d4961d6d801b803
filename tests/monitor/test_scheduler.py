"""Monitoring end to end on the loopback lab, on Celery (beat in the worker) and in fallback (the web
process ticks): scheduled scans repeat, the lab changes between runs, the expected events appear
once each; a killed worker loses no scheduled run; concurrent schedulers start one scan."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator

import pytest

from app.monitor.notify.senders import verify
from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import WebServer, Worker, app_env, run_python, wait_for
from tests.support.receiver import Receiver
from tests.support.reconlab import ReconLab, close_listener

FAST = {
    "MIN_SCHEDULE_SECONDS": "1",
    "SCHEDULER_TICK_SECONDS": "0.5",
    "GONE_AFTER_MISSING_RUNS": "2",
    "NOTIFY_BACKOFF_SECONDS": "0.2",
    "NOTIFY_MAX_ATTEMPTS": "3",
    "NOTIFY_TIMEOUT_SECONDS": "2",
}


@pytest.fixture
def recon_lab(tmp_path) -> Iterator[ReconLab]:
    lab = ReconLab(tmp_path / "words.txt")
    yield lab
    lab.stop()


class Port:
    """A port reserved now (bound, not listening: connections are refused) and opened later."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def open(self) -> None:
        self.sock.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.sock.accept()[0].close()
            except OSError as exc:
                if self.sock.fileno() == -1 or exc.errno == errno.EINVAL:
                    return  # closed: the port goes away
                # A connection reset before it was accepted (scanners close fast): keep listening.

    def close(self) -> None:
        close_listener(self.sock)


def _events(web, target_id: int) -> list[dict]:
    return web.get("/api/v1/events", params={"target_id": target_id, "limit": 1000}).json()["events"]


def _active_scans(web, target_id: int) -> list[dict]:
    scans = web.get("/api/v1/scans", params={"target_id": target_id, "limit": 500}).json()["scans"]
    return [s for s in scans if s["status"] in ("queued", "running")]


def _succeeded_scans(web, target_id: int) -> list[dict]:
    scans = web.get("/api/v1/scans", params={"target_id": target_id, "limit": 500}).json()["scans"]
    return [s for s in scans if s["status"] == "succeeded"]


@pytest.mark.parametrize("backend", ["celery", "fallback"])
def test_scheduled_scans_report_each_change_once(backend, recon_lab, data_dir, redis_server, tmp_path):
    lab = recon_lab
    later = Port("127.0.0.11")
    if backend == "celery":
        import redis

        redis.Redis.from_url(redis_server.url).flushdb()
        env = app_env(data_dir, redis_server.url, **lab.env(), **FAST)
        worker = Worker(env).start()
    else:
        env = app_env(data_dir, UNREACHABLE_REDIS, **lab.env(), **FAST)
        worker = None
    web = WebServer(env).start()
    receiver = Receiver("127.0.0.1").start()
    try:
        hook = {"kind": "webhook", "url": receiver.url + "/hook", "events": [], "secret": "lab-hmac-key-not-real"}
        assert web.post("/api/v1/notifications", json=hook).status_code == 201
        down = {"kind": "webhook", "url": "http://127.0.0.1:1/down", "events": ["port.opened"]}  # nothing listens
        down_id = web.post("/api/v1/notifications", json=down).json()["id"]
        body = lab.target()
        body["scan_options"]["modules"] = ["subdomains", "dns", "ports"]
        body["scan_options"]["ports"] += f",{later.port}"
        body["schedule"] = {"every_seconds": 2}
        created = web.post("/api/v1/targets", json=body)
        assert created.status_code == 201, created.text
        tid = created.json()["target_id"]
        assert [s["target_id"] for s in web.get("/api/v1/jobs/scheduled").json()["scheduled"]] == [tid]

        wait_for(lambda: _succeeded_scans(web, tid), 60, interval=0.5, what="baseline scan")
        assert [e["type"] for e in _events(web, tid)] == ["scan.baseline"]

        # Between runs the lab gains a name and a port, and loses a name and a port. (The schedule is off
        # while it changes: a scan that found a name before the change and resolved it after would rightly
        # report a DNS change the test does not count.)
        assert web.patch(f"/api/v1/targets/{tid}", json={"schedule": None}).status_code == 200
        wait_for(lambda: not _active_scans(web, tid), 60, interval=0.2, what="the running scan to end")
        lab.dns.add("staging", {"A": ["127.0.0.16"]})  # in the brute-force wordlist
        later.open()
        with lab.dns._lock:
            del lab.dns.rrs["mail.lab.test"]
        lab.extra.stop()
        if worker is not None:
            worker.kill()  # killed between runs: the next runs still happen (fallback ticks, then beat again)
            worker = Worker(env, name="w2").start()

        assert web.patch(f"/api/v1/targets/{tid}", json={"schedule": {"every_seconds": 2}}).status_code == 200

        def all_seen() -> bool:
            types = [e["type"] for e in _events(web, tid)]
            return {"subdomain.new", "port.opened", "subdomain.gone", "port.closed"} <= set(types)

        wait_for(all_seen, 90, interval=0.5, what="the four change events")
        runs_before = len(_succeeded_scans(web, tid))
        wait_for(lambda: len(_succeeded_scans(web, tid)) >= runs_before + 2, 60, interval=0.5, what="two more runs")
        events = _events(web, tid)
        counted = {t: [e for e in events if e["type"] == t] for t in {e["type"] for e in events}}
        assert {t: len(v) for t, v in counted.items()} == {
            "scan.baseline": 1,
            "subdomain.new": 1,
            "port.opened": 1,
            "subdomain.gone": 1,
            "port.closed": 1,
        }, [e["summary"] for e in events]
        assert counted["subdomain.new"][0]["data"]["name"] == "staging.lab.test"
        assert counted["subdomain.gone"][0]["data"]["name"] == "mail.lab.test"
        assert counted["port.opened"][0]["data"]["after"] == {"host": "127.0.0.11", "port": later.port}
        assert counted["port.closed"][0]["data"]["before"] == {"host": "127.0.0.11", "port": lab.extra.port}
        assert all(e["summary"].endswith(" on lab") for e in events)
        # The webhook got every event once, signed; the dead endpoint was retried, failed, and logged it,
        # while the scans went on.
        expected = sorted(e["id"] for e in events)
        # A delivery the killed worker was sending is taken back after stuck_after(2 s) = 38 s.
        wait_for(lambda: len(receiver.posts("/hook")) >= len(expected), 60, what="webhook deliveries")
        posts = receiver.posts("/hook")
        # At least once: a send cut short by the killed worker may be sent again, with the same delivery id.
        by_delivery = {p.headers["x-assetmon-delivery"]: p for p in posts}
        assert sorted(p.json()["event"]["id"] for p in by_delivery.values()) == expected
        assert all(verify("lab-hmac-key-not-real", p.headers, p.body) for p in posts)
        failed = wait_for(
            lambda: [d for d in web.get("/api/v1/notifications/deliveries", params={"status": "failed"}).json()["deliveries"]
                     if d["channel_id"] == down_id],
            30,
            what="the dead endpoint's delivery to fail",
        )  # fmt: skip
        assert len(failed) == 1 and len(failed[0]["log"]) == 3  # NOTIFY_MAX_ATTEMPTS, every attempt logged
        timeline = web.get("/events", params={"target_id": tid})
        assert timeline.status_code == 200 and "Subdomain mail.lab.test is gone on lab" in timeline.text
        assert "every 2 s" in timeline.text  # the scheduled run, with a run-now button

        # Never two scans of the target at once: each started after the previous one finished.
        scans = sorted(_succeeded_scans(web, tid), key=lambda s: s["created_at"])
        for earlier, following in zip(scans, scans[1:], strict=False):
            assert following["created_at"] >= earlier["finished_at"] or following["created_at"] < earlier["created_at"]
    finally:
        web.stop()
        receiver.stop()
        if worker is not None:
            worker.stop()
        later.close()


def test_concurrent_schedulers_start_one_scan(tmp_path):
    """Four processes tick at the same moment for a due target: exactly one scan starts."""
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS, MIN_SCHEDULE_SECONDS="1")
    setup = run_python(
        env,
        "from app.db import ensure_migrated; ensure_migrated()\n"
        "from app.recon import targets\n"
        "t = targets.create({'name': 'one', 'cidrs': ['127.0.0.77'], 'schedule': {'every_seconds': 1},"
        " 'scan_options': {'modules': ['ports'], 'ports': '1-20'}})\n"
        "print(t.id)",
    )
    assert setup.returncode == 0, setup.stderr
    code = (
        "import time; from datetime import timedelta\n"
        "from app.models import utcnow\n"
        "from app import tasks  # the job catalogue, as every entry point imports it\n"
        "from app.monitor.scheduler import fire_due\n"
        "time.sleep(1.5)\n"  # all four are past the due time together
        "print(len(fire_due(utcnow())))"
    )
    results: list[str] = []

    def one() -> None:
        done = run_python(env, code)
        results.append(done.stdout.strip() or done.stderr)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["0", "0", "0", "1"], results


def test_schedules_are_validated(fallback_web):
    base = {"name": "s", "domains": ["lab.test"]}
    for schedule, needle in [
        ({"every_seconds": 10}, "at least 300"),
        ({"cron": "* * * * *"}, "fires every 60 s"),
        ({"cron": "not cron"}, "not a cron expression"),
        ({"hourly": True}, "every_seconds"),
        ("daily", "every_seconds"),
    ]:
        response = fallback_web.post("/api/v1/targets", json=base | {"schedule": schedule})
        assert response.status_code == 422 and needle in response.json()["detail"], response.text
    created = fallback_web.post("/api/v1/targets", json=base | {"schedule": {"cron": "*/30 * * * *"}}).json()
    assert created["schedule"] == {"cron": "*/30 * * * *"} and created["next_run_at"]
    moved = fallback_web.post(
        f"/api/v1/jobs/scheduled/{created['target_id']}/reschedule", json={"schedule": {"every_seconds": 3600}}
    )
    assert moved.status_code == 200 and moved.json()["schedule"] == {"every_seconds": 3600}
    bad = fallback_web.post(
        f"/api/v1/jobs/scheduled/{created['target_id']}/reschedule", json={"schedule": {"every_seconds": 5}}
    )
    assert bad.status_code == 422
    assert fallback_web.post("/api/v1/jobs/scheduled/999/reschedule", json={"schedule": None}).status_code == 404
    assert fallback_web.get("/api/v1/events", params={"type": "nope"}).status_code == 422


def test_import_known_assets_then_scan_only_what_is_new(recon_lab, tmp_path):
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS, **recon_lab.env())
    web = WebServer(env).start()
    try:
        body = recon_lab.target()
        body["scan_options"]["modules"] = ["subdomains", "dns", "ports"]
        tid = web.post("/api/v1/targets", json=body).json()["target_id"]
        imported = web.post(
            f"/api/v1/targets/{tid}/import",
            json={"subdomains": ["www.lab.test", "api.lab.test", "legacy-ct.lab.test"], "hosts": ["127.0.0.12"]},
        ).json()
        assert imported == {"target_id": tid, "imported": 4, "already_known": 0}
        refused = web.post(f"/api/v1/targets/{tid}/import", json={"subdomains": ["evil.test"]})
        assert refused.status_code == 422 and "outside the target's scope" in refused.json()["detail"]

        started = web.post("/api/v1/scans", json={"target": "lab", "options": {"incremental": True}}).json()
        scan = wait_for(
            lambda: (s := web.get(f"/api/v1/scans/{started['scan_id']}").json())["status"] == "succeeded" and s,
            60,
            what="incremental scan",
        )
        names = {s["name"] for s in scan["result"]["subdomains"]}
        assert names.isdisjoint({"www.lab.test", "api.lab.test", "legacy-ct.lab.test"}) and "mail.lab.test" in names
        assert "127.0.0.12" not in {h["host"] for h in scan["result"]["hosts"]}
        assert any(w.startswith("incremental:") for w in scan["result"]["warnings"])
    finally:
        web.stop()
