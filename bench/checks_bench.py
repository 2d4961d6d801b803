"""Exposure checks: requests/s of the template engine against loopback web services, beside a naive loop.

1. A server process listens on --services loopback ports (127.0.0.1, HTTP/1.1 keep-alive, a short page
   per path). --templates generated templates (one GET each, word/regex/status/dsl matchers, some with
   an extractor) run against every service through `run_templates` with connection reuse, rates
   raised out of the way (--rate): requests/s and wall time. Every (template, service) pair must be
   answered and matched (the pages hold what the matchers want): a lost request is a failure.
2. The naive way, in the same run: one `httpx.get()` after another (a new connection each, as a
   script would), on a --naive-sample of the same requests; its requests/s and the wall time it would
   take for all of them.
3. --load generated templates (varied: several paths, payloads, headers, extractors, dsl) are written
   to a temp dir and loaded by `load_templates` in a fresh process: load time and peak RSS.

Targets: >= 1,000 requests/s with connection reuse, >= 10,000 templates loaded in <= 10 s and
<= 400 MB. Exits 1 if a target is missed. Loopback only.

    .venv/bin/python bench/checks_bench.py [--services 50] [--templates 200] [--load 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.checks.loader import read_template  # noqa: E402
from app.checks.runner import RunOptions, run_templates  # noqa: E402

MARKER = "assetmon-bench-marker"


# --- the loopback services --------------------------------------------------------------------------------


class _Page(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1].decode("latin-1")
            body = f"<html><title>{path}</title><p>{MARKER} {path} version=1.2.3</p></html>".encode()
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nServer: bench/1.0\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )


def _serve(sockets: list[socket.socket], ready) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(_Page, sock=sock, backlog=1024) for sock in sockets]
        ready.set()
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


def start_services(count: int) -> tuple[multiprocessing.Process, list[int]]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=_serve, args=(sockets, ready), daemon=True)
    process.start()
    ready.wait(30)
    for sock in sockets:
        sock.close()
    return process, ports


# --- templates -------------------------------------------------------------------------------------------


def run_template(number: int) -> dict:
    kind = number % 4
    matcher = [
        {"type": "word", "words": [MARKER, f"/t{number}"], "condition": "and"},
        {"type": "regex", "regex": [r"version=\d+\.\d+\.\d+"]},
        {"type": "status", "status": [200]},
        {"type": "dsl", "dsl": [f'status_code == 200 && contains(body, "{MARKER}")']},
    ][kind]
    request: dict = {"method": "GET", "path": [f"{{{{BaseURL}}}}/t{number}"], "matchers": [matcher]}
    if number % 5 == 0:
        request["extractors"] = [{"type": "regex", "group": 1, "regex": [r"version=([\d.]+)"]}]
    info = {"name": f"bench {number}", "author": "bench", "severity": "info"}
    return {"id": f"bench-{number}", "info": info}, request


def load_template(number: int) -> dict:
    kind = number % 6
    request: dict = {"method": "GET", "path": [f"{{{{BaseURL}}}}/l{number}/{{{{randstr}}}}"]}
    if kind == 1:
        request["path"] += [f"{{{{BaseURL}}}}/l{number}.bak", f"{{{{RootURL}}}}/l{number}.old"]
        request["stop-at-first-match"] = True
    if kind == 2:
        request["payloads"] = {"word": [f"w{number}-{i}" for i in range(5)]}
        request["attack"] = "batteringram"
        request["path"] = ["{{BaseURL}}/{{word}}"]
    if kind == 3:
        request["headers"] = {"X-Bench": f"{number}", "Accept": "application/json"}
    request["matchers-condition"] = "and"
    request["matchers"] = [
        {"type": "status", "status": [200, 206]},
        {"type": "word", "part": "body", "words": [f"token-{number}", "marker"], "condition": "or"},
        {"type": "regex", "regex": [rf"build-{number}-[0-9a-f]{{8}}"], "negative": kind == 4},
    ]
    if kind == 5:
        request["matchers"].append(
            {"type": "dsl", "dsl": [f'len(body) > {number % 97} && !contains(to_lower(body), "denied")']}
        )
    request["extractors"] = [{"type": "regex", "group": 1, "regex": [rf"v=({number}\.\d+)"]}]
    if kind in (0, 3):
        request["extractors"].append({"type": "json", "json": [".data.items[].name"]})
    info = {
        "name": f"generated check {number}",
        "author": "bench",
        "severity": ("info", "low", "medium", "high", "critical")[number % 5],
        "tags": f"bench,kind{kind}",
        "description": "A generated template for the load benchmark. " * 3,
        "reference": [f"https://docs.example.invalid/{number}"],
    }
    return {"id": f"load-{number}", "info": info, "http": [request]}


def write_templates(folder: Path, count: int, make) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        data = make(number)
        if isinstance(data, tuple):
            head, request = data
            data = head | {"http": [request]}
        (folder / f"{data['id']}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


# --- measurements ----------------------------------------------------------------------------------------


def measure_engine(folder: Path, ports: list[int], rate: float, concurrency: int) -> dict:
    templates = [read_template(p) for p in sorted(folder.glob("*.yaml"))]
    targets = [f"http://s{i}.bench:{port}" for i, port in enumerate(ports)]
    options = RunOptions(
        pin=lambda host: "127.0.0.1", concurrency=concurrency, global_rate=rate, host_rate=rate, timeout=20
    )
    started = time.perf_counter()
    report = asyncio.run(run_templates(targets, templates, options))
    wall = time.perf_counter() - started
    expected = len(templates) * len(targets)
    return {
        "requests": report.requests,
        "matched": len(report.results),
        "expected": expected,
        "errors": report.errors,
        "wall_s": round(wall, 2),
        "requests_per_s": round(report.requests / wall),
    }


def measure_naive(ports: list[int], templates: int, sample: int) -> dict:
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/t{i % templates}" for i in range(sample)]
    started = time.perf_counter()
    matched = 0
    for url in urls:
        response = httpx.get(url, timeout=20)
        matched += MARKER in response.text
    wall = time.perf_counter() - started
    rate = sample / wall
    return {
        "sample": sample,
        "matched": matched,
        "requests_per_s": round(rate),
        "wall_s_for_all": round(templates * len(ports) / rate, 1),
    }


LOAD_PROBE = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from app.checks.loader import load_templates
loaded = load_templates([Path(sys.argv[1])], builtin=False)
seconds = time.perf_counter() - started
print(json.dumps({"loaded": len(loaded.templates), "skipped": len(loaded.skipped), "seconds": round(seconds, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def measure_load(folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD_PROBE, str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise SystemExit(f"loading failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--templates", type=int, default=200)
    parser.add_argument("--load", type=int, default=10_000)
    parser.add_argument("--naive-sample", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100_000.0, help="global and per-host requests/s allowed")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    misses = []
    with tempfile.TemporaryDirectory(prefix="assetmon-checks-bench-") as tmp:
        run_dir, load_dir = Path(tmp) / "run", Path(tmp) / "load"
        write_templates(run_dir, args.templates, run_template)
        server, ports = start_services(args.services)
        try:
            naive = measure_naive(ports, args.templates, args.naive_sample)
            engine = measure_engine(run_dir, ports, args.rate, args.concurrency)
        finally:
            server.terminate()
            server.join(5)
        print(f"engine: {args.templates} templates x {args.services} services, concurrency {args.concurrency}")
        print(
            f"  {engine['requests']:,} requests in {engine['wall_s']} s = {engine['requests_per_s']:,} requests/s; "
            f"{engine['matched']:,} of {engine['expected']:,} matched, {engine['errors']} errors"
        )
        print(
            f"naive httpx.get() loop: {naive['requests_per_s']:,} requests/s on a sample of {naive['sample']:,} "
            f"({naive['matched']:,} matched); all {engine['expected']:,} would take {naive['wall_s_for_all']} s"
        )
        print(f"  speed-up: {engine['requests_per_s'] / max(1, naive['requests_per_s']):.1f}x")
        if engine["requests_per_s"] < 1000:
            misses.append("engine below 1,000 requests/s")
        if engine["matched"] != engine["expected"] or engine["errors"]:
            misses.append("requests lost or unmatched")
        started = time.perf_counter()
        write_templates(load_dir, args.load, load_template)
        written = time.perf_counter() - started
        load = measure_load(load_dir)
        print(
            f"load: {load['loaded']:,} templates ({load['skipped']} skipped) in {load['seconds']} s, "
            f"peak RSS {load['peak_rss_mb']} MB (writing them took {written:.1f} s)"
        )
        if load["loaded"] < args.load or load["seconds"] > 10 or load["peak_rss_mb"] > 400:
            misses.append("load: not all templates, over 10 s or over 400 MB")
    print(f"this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    for miss in misses:
        print(f"MISSED: {miss}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
