"""Scale-out: one big loopback port scan on 1 Celery worker, then on 2 workers sharing its slices.

Starts a real redis-server, the web server and real workers (./start_worker.sh --name w1 / w2,
concurrency 1 each) in a temp dir, opens listeners on 30 loopback addresses (127.0.0.65-94), and runs
the same scan of 127.0.0.64/27 x the given ports through the API, first with one worker, then with two.
Time is the job's own (started -> finished, from the API). Both runs must find the same open ports.

Each worker scans at most PORT_RATE_GLOBAL connection attempts a second (`--rate`), as a polite scanner
on a real network is capped: that is what more workers multiply. With `--rate 0` the scan is bound by
CPU instead; on this 2-CPU machine one worker's scanner already keeps both CPUs busy on loopback, so a
second worker on the same machine cannot add much there (on a second host it would).
Target: speed-up of 2 workers vs 1 >= 1.6x with the rate cap; identical results.

    .venv/bin/python bench/scaleout_bench.py [--ports 1-5000] [--rate 10000] [--chunk 20000] [--uncapped]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import RedisServer, WebServer, Worker, app_env, wait_for

TARGET_SPEEDUP = 1.6
HOSTS = [f"127.0.0.{n}" for n in range(65, 95)]
PRODUCTION_TIMINGS = {"JOB_HEARTBEAT_SECONDS": 2, "JOB_STALE_SECONDS": 30, "REAPER_INTERVAL_SECONDS": 10}


def open_listeners(ports: range) -> tuple[list[socket.socket], dict[str, list[int]]]:
    sockets, opened = [], {}
    for index, host in enumerate(HOSTS):
        for port in (ports.start + (index * 37) % len(ports), ports.stop - 1 - index):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sock.listen(64)
            sockets.append(sock)
            opened.setdefault(host, []).append(port)
    return sockets, {h: sorted(p) for h, p in opened.items()}


def run_scan(web: WebServer, ports: str) -> tuple[float, dict[str, list[int]], str]:
    started = web.post(
        "/api/v1/scans", json={"target": "127.0.0.64/27", "modules": ["ports"], "options": {"ports": ports}}
    )
    started.raise_for_status()
    scan_id, job_id = started.json()["scan_id"], started.json()["job_id"]
    scan = wait_for(
        lambda: (s := web.get(f"/api/v1/scans/{scan_id}").json())["status"] not in ("queued", "running") and s,
        900,
        interval=0.2,
        what="the scan",
    )
    if scan["status"] != "succeeded":
        raise SystemExit(f"scan {scan['status']}: {scan.get('error')}")
    job = web.get(f"/api/v1/jobs/{job_id}").json()
    seconds = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    found = {h["host"]: h["open_ports"] for h in scan["result"]["hosts"] if h["open_ports"]}
    lines = [line["message"] for line in web.get(f"/api/v1/jobs/{job_id}/log").json()["lines"]]
    split = next((line for line in lines if "slices merged" in line), "not split")
    return seconds, found, split


def measure(workdir: Path, redis_url: str, workers: int, rate: int, args: argparse.Namespace) -> tuple:
    data = workdir / f"data-{workers}-{rate}"
    env = app_env(data, redis_url, scan_chunk_probes=args.chunk, port_rate_global=rate, **PRODUCTION_TIMINGS)
    started = [Worker(env, name=f"w{n + 1}", concurrency=1, queues="default,scans").start() for n in range(workers)]
    web = WebServer(env).start()
    try:
        wait_for(lambda: web.health()["mode"] == "celery", 30, what="celery mode")
        return run_scan(web, args.ports)
    finally:
        web.stop()
        for worker in started:
            worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", default="1-5000", help="port range to scan on each of the 30 addresses")
    parser.add_argument("--rate", type=int, default=10000, help="PORT_RATE_GLOBAL of each worker (0: no cap)")
    parser.add_argument("--chunk", type=int, default=20000, help="SCAN_CHUNK_PROBES")
    parser.add_argument("--uncapped", action="store_true", help="also measure with no rate cap (CPU-bound)")
    args = parser.parse_args()
    low, _, high = args.ports.partition("-")
    port_range = range(int(low), int(high or low) + 1)
    probes = len(HOSTS) * len(port_range)
    listeners, expected = open_listeners(port_range)
    rates = [args.rate] + ([0] if args.uncapped and args.rate else [])
    ok = True
    with tempfile.TemporaryDirectory(prefix="assetmon-scaleout-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis").start()
        try:
            print(f"scan: 127.0.0.64/27 (30 hosts) x ports {args.ports} = {probes:,} probes, slices of {args.chunk:,}")
            header = f"{'rate cap/worker':>16} {'workers':>8} {'seconds':>8} {'probes/s':>10} {'speed-up':>9}"
            print(header + "  who ran what")
            for rate in rates:
                one, found_one, split_one = measure(workdir, redis.url, 1, rate, args)
                two, found_two, split_two = measure(workdir, redis.url, 2, rate, args)
                cap = f"{rate:,}/s" if rate else "none"
                print(f"{cap:>16} {1:>8} {one:>8.2f} {probes / one:>10,.0f} {'1.00x':>9}  {split_one}")
                print(f"{cap:>16} {2:>8} {two:>8.2f} {probes / two:>10,.0f} {one / two:>8.2f}x  {split_two}")
                # Other programs listening on 0.0.0.0 show up on every 127.0.0.x too: ours must all be there.
                ours = all(set(ports) <= set(found_one.get(host, [])) for host, ports in expected.items())
                same = found_one == found_two and ours
                print(f"{'':>16} same open ports on 1 and 2 workers, every listener found: {'yes' if same else 'NO'}")
                ok = ok and same
                if rate == args.rate and rate:
                    verdict = one / two >= TARGET_SPEEDUP
                    outcome = "PASS" if verdict else "FAIL"
                    print(f"target: 2 workers >= {TARGET_SPEEDUP}x of 1 with the rate cap: {outcome}")
                    ok = ok and verdict
        finally:
            redis.stop()
            for sock in listeners:
                sock.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
