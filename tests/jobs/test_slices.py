"""A big port scan cut into slices: every probe in exactly one slice, and two real Celery workers
(different node names) sharing one scan give the same merged result as one worker alone."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest
import redis

from app.recon.stages import ports as chunks
from tests.support.processes import WebServer, Worker, app_env, wait_for

HOSTS = [f"127.0.0.{n}" for n in range(65, 71)]  # 127.0.0.64/29 without its network and broadcast addresses
PORTS = "20001-26000"


def test_slices_cover_every_probe_exactly_once():
    hosts = [f"10.0.0.{n}" for n in range(7)]
    ports = list(range(1, 1001))
    for probes in (100, 999, 1000, 2500, 7000, 10**6):
        slices = chunks.port_slices(hosts, ports, probes)
        seen = [(h, p) for payload, _ in slices for h in payload["hosts"] for p in payload["ports"]]
        assert sorted(seen) == sorted((h, p) for h in hosts for p in ports)
        assert all(size == len(p["hosts"]) * len(p["ports"]) <= max(probes, 1000) for p, size in slices)
    assert chunks.port_slices([], ports, 100) == [] and chunks.port_slices(hosts, [], 100) == []


def test_merge_unions_and_sorts_each_hosts_ports():
    merged = chunks.merge_ports([{"a": [443, 80]}, {"b": []}, {"a": [22]}, {"b": [8080], "a": [80]}])
    assert merged == {"a": [22, 80, 443], "b": [8080]}


@pytest.fixture
def listeners() -> Iterator[dict[str, list[int]]]:
    """Open ports spread over the scanned range, on six loopback addresses."""
    rng = random.Random(8)
    opened: dict[str, list[int]] = {}
    sockets = []
    for host in HOSTS[:5]:  # the last address has nothing open
        for port in sorted(rng.sample(range(20001, 26001), 4)):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:  # taken by something else on this machine: leave it out
                sock.close()
                continue
            sock.listen(64)
            sockets.append(sock)
            opened.setdefault(host, []).append(port)
    yield opened
    for sock in sockets:
        sock.close()


def _scan(web: WebServer) -> dict:
    started = web.post(
        "/api/v1/scans", json={"target": "127.0.0.64/29", "modules": ["ports"], "options": {"ports": PORTS}}
    )
    assert started.status_code == 202, started.text
    scan_id, job_id = started.json()["scan_id"], started.json()["job_id"]
    scan = wait_for(
        lambda: (s := web.get(f"/api/v1/scans/{scan_id}").json())["status"] not in ("queued", "running") and s,
        120,
        interval=0.3,
        what="the scan to finish",
    )
    assert scan["status"] == "succeeded", scan
    log = [line["message"] for line in web.get(f"/api/v1/jobs/{job_id}/log").json()["lines"]]
    return {"hosts": scan["result"]["hosts"], "log": log}


def test_two_workers_share_one_big_scan_and_merge_the_same_result(data_dir, redis_server, listeners):
    redis.Redis.from_url(redis_server.url).flushdb()
    # 6 hosts x 6,000 ports = 36,000 probes in slices of 1,500: 24 slices.
    env = app_env(data_dir, redis_server.url, scan_chunk_probes=1500)
    first = Worker(env, name="w1", concurrency=1, queues="default,scans").start()
    second = Worker(env, name="w2", concurrency=1, queues="scans").start()
    web = WebServer(env).start()
    try:
        wait_for(lambda: web.health()["mode"] == "celery", 20, what="celery mode")
        shared = _scan(web)
        second.stop()
        alone = _scan(web)
    finally:
        web.stop()
        first.stop()
        second.stop()

    expected = [{"host": h, "names": [], "open_ports": sorted(listeners.get(h, []))} for h in HOSTS]
    assert shared["hosts"] == expected
    assert alone["hosts"] == shared["hosts"]

    [merged] = [line for line in shared["log"] if "slices merged" in line]
    assert merged.startswith("ports: 24 slices merged (")
    # Both node names ran slices of the one scan (w1 owns the job and runs slices too).
    assert "by w1@" in merged and "by w2@" in merged, merged
    counts = [int(part.split(" by ")[0].replace(",", "")) for part in merged.split("(")[1].rstrip(")").split(", ")]
    assert sum(counts) == 24
    [merged_alone] = [line for line in alone["log"] if "slices merged" in line]
    assert merged_alone.startswith("ports: 24 slices merged (24 by w1@")
