"""Load test: the UI and the API under concurrent users while recon scans run, on real processes.

In a temp dir it starts a redis-server, Celery workers and the web server (tests.support.processes; all
on 127.0.0.1, with production liveness timings and worker priority), and the recon lab of the tests
(tests/support/reconlab.py: DNS, certificate transparency and web servers on 127.0.0.x) in a child
process at low priority (it stands for servers elsewhere); its brute force uses the shipped wordlist plus
the lab's names. The database gets a big target seeded straight into it (thousands of subdomains and
ports, scans, jobs, events, secrets; every address in 127.1.0.0/16, every name under corp.test) and the lab
target is added through the API. Resolvers and the CT URL point at the lab: nothing leaves loopback.

Then, for --duration seconds, a scan of the lab target runs all the time (a new one through the API as
soon as the previous one ends) while --users simulated users work: three in four are browser users who
sign in through the /login form and open pages, switch tabs and poll what htmx polls; one in four is a
script on the API with the bearer token that reads lists, scans, jobs and findings and now and then asks
for a scan (of the busy lab target: 409, or a small port scan of a lab host); everyone checks /healthz now
and then. Each user waits a random 0 to 2x --think seconds between requests. Latencies are round trips
on loopback, measured by the client (one asyncio process, full body read); the client's own event-loop
lag, the web server's CPU time and the load average are printed beside them.

An error is an exception or a status that the request does not expect (4xx/5xx, except 409 when a scan
of a busy target is asked for; a page that sends a signed-in user to /login), and a scan that fails.
Target: zero errors and p95 <= 300 ms for every group (sign-in is shown, not judged: argon2 is slow on
purpose). Exit 0 when met, 1 otherwise; the run also fails when no scan completed.

    .venv/bin/python bench/load_test.py [--duration 60] [--users 8] [--workers 2] [--think 0.25]
                                        [--seed-subdomains 5000] [--seed-ports 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.seeding import observation_rows  # noqa: E402
from tests.support.processes import (  # noqa: E402
    ADMIN_PASSWORD,
    ADMIN_USER,
    AUTH,
    RedisServer,
    WebServer,
    Worker,
    app_env,
    kill_group,
    wait_for,
)

TARGET_P95_MS = 300.0
# Liveness timings and worker priority as in production (the test helpers use short ones by default).
PRODUCTION_TIMINGS = {
    "JOB_HEARTBEAT_SECONDS": 5,
    "JOB_STALE_SECONDS": 60,
    "REAPER_INTERVAL_SECONDS": 15,
    "BROKER_PROBE_CACHE_SECONDS": 3,
    "WORKER_NICE": 10,
    "WORKER_SHUTDOWN_TIMEOUT": 20,
}
TERMINAL = ("succeeded", "failed", "cancelled")
TABS = ("subdomains", "ports", "services", "js", "secrets", "events", "scans")
SIGN_IN = "sign-in POST /login"
# The table's rows, in order (groups with no requests are left out).
GROUPS = [
    "GET /healthz (baseline)",
    "page /",
    "page /targets",
    "page /targets/{id} tabs",
    "htmx target table",
    "page /scans, /scans/{id}",
    "page /jobs",
    "page /events",
    "page /secrets, /secrets/{id}",
    "page /settings",
    "htmx polls",
    "API GET lists",
    "API GET one",
    "API POST /scans",
    SIGN_IN,
]


# --- the lab, in its own process ------------------------------------------------------------------


def serve_lab(workdir: Path) -> int:
    """Child mode: start the recon lab, print what the parent needs as one JSON line, serve until stdin closes."""
    from tests.support.reconlab import ReconLab

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workdir.mkdir(parents=True, exist_ok=True)
    os.nice(10)  # the lab stands for servers elsewhere: its CPU time should not be taken from the web server
    lab = ReconLab(workdir / "words.txt")
    # Brute force with the shipped wordlist (as in production) plus the lab's own names.
    words = lab.wordlist.read_text().split() + (ROOT / "app/scanners/data/subdomains.txt").read_text().split()
    lab.wordlist.write_text("\n".join(dict.fromkeys(words)) + "\n")
    try:
        info = {
            "target": lab.target(),
            "env": lab.env(),
            "resolver": lab.dns.address,
            "ct_url": f"{lab.ct.url}/ct?q=%25.{{domain}}",
            "api_host": lab.api.host,
            "api_ports": [lab.api.port, lab.extra.port],
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # EOF: the parent is done (or gone)
    finally:
        lab.stop()
    return 0


class LabProcess:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> LabProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "lab.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--serve-lab", str(self.workdir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                start_new_session=True,
            )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the recon lab did not start; see {self.workdir / 'lab.log'}")
        self.info = json.loads(line)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait(timeout=5)
        kill_group(self.proc)


# --- seeding ----------------------------------------------------------------------------------------


def seed(data_dir: Path, subdomains: int, ports: int) -> int:
    """A big target written with bulk inserts in this process (loopback addresses only); returns its id."""
    os.environ.update({"DATA_DIR": str(data_dir), "REDIS_URL": "redis://127.0.0.1:1/0"})
    from sqlalchemy import insert

    from app.db import ensure_migrated, session_scope
    from app.models import Event, Job, Observation, Scan, SecretFinding, utcnow
    from app.recon import targets

    ensure_migrated()
    target = targets.create({"name": "corp", "domains": ["corp.test"], "cidrs": ["127.1.0.0/16"]})
    now = utcnow()
    scan_ids = [secrets.token_hex(16) for _ in range(20)]

    def address(i: int) -> str:
        return f"127.1.{i // 250 % 256}.{i % 250 + 1}"

    rows = observation_rows(
        target.id,
        scan_ids,
        now,
        subdomains=subdomains,
        ports=ports,
        services=300,
        scripts=200,
        domain="corp.test",
        address=address,
        issuer="Load CA",
    )
    with session_scope() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(Observation), rows[start : start + 5000])
        for n, scan_id in enumerate(scan_ids):
            created = now - timedelta(hours=6 * (len(scan_ids) - n))
            finished = created + timedelta(minutes=4)
            session.add(
                Job(
                    id=scan_id,
                    name="recon_scan",
                    queue="scans",
                    status="succeeded",
                    progress=100,
                    created_at=created,
                    started_at=created,
                    finished_at=finished,
                )
            )
            counts = {"subdomains": subdomains, "open_ports": ports, "services": 300}
            session.add(
                Scan(
                    id=scan_id,
                    target_id=target.id,
                    target=target.name,
                    job_id=scan_id,
                    stage="done",
                    counts=counts,
                    created_at=created,
                    finished_at=finished,
                )
            )
        for i in range(500):  # older jobs of every kind, for the Jobs page and the API
            session.add(
                Job(
                    id=secrets.token_hex(16),
                    name=("health_check", "retention_cleanup", "secrets_scan_url")[i % 3],
                    queue=("default", "default", "secrets")[i % 3],
                    status="failed" if i % 17 == 0 else "succeeded",
                    progress=100,
                    created_at=now - timedelta(minutes=10 * i + 1),
                    finished_at=now - timedelta(minutes=10 * i),
                )
            )
        session.execute(
            insert(Event),
            [
                {
                    "target_id": target.id,
                    "scan_id": scan_ids[i % 20],
                    "type": ("port.opened", "subdomain.new", "service.changed")[i % 3],
                    "severity": ("medium", "info", "low")[i % 3],
                    "summary": (
                        f"Port 8080 opened on {address(i)} on corp",
                        f"New subdomain host-{i}.corp.test on corp",
                        f"https://host-{i}.corp.test/ changed: title",
                    )[i % 3],
                    "data": {},
                    "created_at": now - timedelta(minutes=i),
                }
                for i in range(1000)
            ],
        )
        for i in range(40):
            session.add(
                SecretFinding(
                    asset=f"host-{i}.corp.test",
                    fingerprint=secrets.token_hex(32),
                    rule="aws-access-key",
                    description="AWS access key",
                    severity=("critical", "high", "medium")[i % 3],
                    confidence="high",
                    redacted="AKIA…",
                    value="AKIA" + secrets.token_hex(8).upper(),  # made up now
                    url=f"https://host-{i}.corp.test/static/app-{i}.js",
                    sightings=1,
                )
            )
    return target.id


# --- measuring --------------------------------------------------------------------------------------


@dataclass
class Group:
    samples: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class Stats:
    groups: dict[str, Group] = field(default_factory=dict)
    error_log: Counter = field(default_factory=Counter)

    def record(self, group: str, ms: float, error: str | None = None) -> None:
        g = self.groups.setdefault(group, Group())
        g.samples.append(ms)
        if error:
            g.errors += 1
            self.error_log[error] += 1


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (0 with no samples)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


@dataclass
class State:
    lab_id: int
    corp_id: int
    lab: dict[str, Any]
    stop_at: float
    scan_ids: list[str] = field(default_factory=list)  # lab scans seen, newest last
    outcomes: dict[str, str] = field(default_factory=dict)  # lab scan id -> final status
    finding_ids: list[int] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    @property
    def scan_id(self) -> str | None:
        return self.scan_ids[-1] if self.scan_ids else None


def _normalise(path: str) -> str:
    """An error's path without ids, so that the same error is counted as one line."""
    path = re.sub(r"[0-9a-f]{32}", "{id}", path)
    return re.sub(r"/\d+", "/{n}", path)


async def call(
    client: httpx.AsyncClient,
    stats: Stats,
    group: str,
    method: str,
    path: str,
    expect: tuple[int, ...] = (),
    **kw: Any,
) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        response = await client.request(method, path, **kw)
    except Exception as exc:  # a timeout, a reset connection: an error, and the user goes on
        stats.record(group, (time.perf_counter() - start) * 1000, f"{method} {_normalise(path)}: {type(exc).__name__}")
        return None
    ms = (time.perf_counter() - start) * 1000
    status, error = response.status_code, None
    if status >= 400 and status not in expect:
        error = f"{method} {_normalise(path)}: HTTP {status} {response.text[:120]!r}"
    elif 300 <= status < 400 and response.headers.get("location", "").startswith("/login"):
        error = f"{method} {_normalise(path)}: sent to /login (session lost)"
    stats.record(group, ms, error)
    return response


def _weighted(rng: random.Random, actions: list[tuple[int, Any]]):
    weights, funcs = zip(*actions, strict=True)
    return rng.choices(funcs, weights=weights)[0]


# --- simulated users --------------------------------------------------------------------------------


async def browser_user(n: int, base: str, state: State, stats: Stats, think: float) -> None:
    rng = random.Random(n)
    await asyncio.sleep(rng.uniform(0, 2))  # people do not all arrive at once
    async with httpx.AsyncClient(base_url=base, timeout=30, trust_env=False) as client:
        body = {"username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/"}
        response = await call(client, stats, SIGN_IN, "POST", "/login", data=body)
        if response is None or response.status_code != 303 or "assetmon_session" not in str(client.cookies.jar):
            if response is not None and response.status_code == 303:
                stats.record(SIGN_IN, 0, "POST /login: no session cookie")
            return
        htmx_headers = {"HX-Request": "true"}

        def target_page() -> tuple[str, str]:
            tid = rng.choice((state.lab_id, state.corp_id, state.corp_id))
            tab = rng.choice(TABS)
            query = f"?tab={tab}"
            if tid == state.corp_id and tab in ("subdomains", "ports") and rng.random() < 0.5:
                query += rng.choice(("&page=3", "&q=127.1.2", "&sort=port&dir=desc", "&q=host-4"))
            return "page /targets/{id} tabs", f"/targets/{tid}{query}"

        async def get(group: str, path: str, **kw: Any) -> None:
            await call(client, stats, group, "GET", path, **kw)

        async def dashboard() -> None:
            await get("page /", "/")

        async def targets() -> None:
            await get("page /targets", "/targets")

        async def target_tab() -> None:
            await get(*target_page())

        async def table_region() -> None:
            tid = rng.choice((state.lab_id, state.corp_id))
            tab = rng.choice(("subdomains", "ports", "services"))
            page = rng.randint(1, 20) if tid == state.corp_id else 1
            headers = htmx_headers | {"HX-Target": "target-table"}
            await get("htmx target table", f"/targets/{tid}?tab={tab}&page={page}", headers=headers)

        async def scan_page() -> None:
            path = f"/scans/{state.scan_id}" if state.scan_id and rng.random() < 0.8 else "/scans"
            await get("page /scans, /scans/{id}", path)

        async def jobs() -> None:
            if state.job_ids and rng.random() < 0.3:
                await get("page /jobs", f"/jobs/{rng.choice(state.job_ids)}")
            else:
                await get("page /jobs", rng.choice(("/jobs", "/jobs?status=succeeded", "/jobs?name=recon_scan")))

        async def events() -> None:
            await get("page /events", rng.choice(("/events", f"/events?target_id={state.corp_id}")))

        async def secrets_page() -> None:
            if state.finding_ids and rng.random() < 0.4:
                await get("page /secrets, /secrets/{id}", f"/secrets/{rng.choice(state.finding_ids)}")
            else:
                await get("page /secrets, /secrets/{id}", "/secrets")

        async def settings() -> None:
            await get("page /settings", "/settings")

        async def poll() -> None:
            paths = ["/ui/dashboard/jobs", "/ui/dashboard/counts", "/ui/dashboard/mode", "/ui/mode"]
            paths += ["/ui/jobs/rows", "/ui/scans/rows", "/ui/secrets/rows?status=open"]
            if state.scan_id:
                paths += [f"/ui/scans/{state.scan_id}/live"] * 3
            await get("htmx polls", rng.choice(paths), headers=htmx_headers)

        async def healthz() -> None:
            await get("GET /healthz (baseline)", "/healthz")

        actions = [
            (12, dashboard),
            (6, targets),
            (14, target_tab),
            (6, table_region),
            (10, scan_page),
            (6, jobs),
            (5, events),
            (4, secrets_page),
            (3, settings),
            (25, poll),
            (4, healthz),
        ]
        while state.running:
            await _weighted(rng, actions)()
            await asyncio.sleep(rng.uniform(0, 2 * think))


async def api_user(n: int, base: str, state: State, stats: Stats, think: float) -> None:
    rng = random.Random(1000 + n)
    await asyncio.sleep(rng.uniform(0, 2))
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH, trust_env=False) as client:

        async def get(group: str, path: str) -> httpx.Response | None:
            return await call(client, stats, group, "GET", path)

        async def lists() -> None:
            path = rng.choice(
                (
                    "/api/v1/targets",
                    "/api/v1/scans",
                    f"/api/v1/scans?target_id={state.lab_id}",
                    "/api/v1/jobs?limit=50",
                    "/api/v1/jobs?status=running",
                    "/api/v1/jobs/queues",
                    "/api/v1/secrets/findings?limit=50",
                    "/api/v1/events?limit=50",
                    f"/api/v1/events?target_id={state.corp_id}&limit=100",
                )
            )
            response = await get("API GET lists", path)
            if response is not None and response.status_code == 200 and "findings" in path:
                state.finding_ids[:] = [f["id"] for f in response.json().get("findings", [])][:20]
            if response is not None and response.status_code == 200 and path.startswith("/api/v1/jobs?limit"):
                state.job_ids[:] = [j["job_id"] for j in response.json().get("jobs", [])][:20]

        async def one() -> None:
            choices = [f"/api/v1/targets/{rng.choice((state.lab_id, state.corp_id))}"]
            if state.scan_id:
                choices += [f"/api/v1/scans/{state.scan_id}"] * 2
            if state.job_ids:
                job_id = rng.choice(state.job_ids)
                choices += [f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/log"]
            if state.finding_ids:
                choices.append(f"/api/v1/secrets/findings/{rng.choice(state.finding_ids)}")
            await get("API GET one", rng.choice(choices))

        async def scan_lab() -> None:
            # "Scan now" on the lab: usually busy (409, expected); a 202 is picked up by the scan loop.
            await call(client, stats, "API POST /scans", "POST", "/api/v1/scans", (409,), json={"target": "lab"})

        async def scan_host() -> None:
            host, ports = state.lab["api_host"], state.lab["api_ports"]
            body = {
                "target": host,
                "modules": ["ports", "http"],
                "options": {"ports": ",".join(map(str, ports)), "http_ports": ports[:1]},
            }
            await call(client, stats, "API POST /scans", "POST", "/api/v1/scans", json=body)

        async def healthz() -> None:
            await get("GET /healthz (baseline)", "/healthz")

        actions = [(30, lists), (20, one), (1, scan_lab), (1, scan_host), (4, healthz)]
        while state.running:
            await _weighted(rng, actions)()
            await asyncio.sleep(rng.uniform(0, 2 * think))


async def scan_loop(base: str, state: State, stats: Stats) -> None:
    """Keep a scan of the lab target going: start one when the last one ended, follow it to its end."""
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH, trust_env=False) as client:
        while state.running:
            response = await call(
                client, stats, "API POST /scans", "POST", "/api/v1/scans", (409,), json={"target": "lab"}
            )
            scan_id = None
            if response is not None and response.status_code == 202:
                scan_id = response.json()["scan_id"]
            elif response is not None and response.status_code == 409:  # a user started one: follow it
                listed = await call(client, stats, "API GET lists", "GET", f"/api/v1/scans?target_id={state.lab_id}")
                if listed is not None and listed.status_code == 200:
                    active = [s for s in listed.json()["scans"] if s["status"] not in TERMINAL]
                    scan_id = active[0]["scan_id"] if active else None
            if scan_id is None:
                await asyncio.sleep(0.5)
                continue
            if scan_id not in state.scan_ids:
                state.scan_ids.append(scan_id)
            while state.running:
                await asyncio.sleep(min(0.5, max(0.0, state.stop_at - time.monotonic())))
                polled = await call(client, stats, "API GET one", "GET", f"/api/v1/scans/{scan_id}")
                if polled is not None and polled.status_code == 200 and polled.json()["status"] in TERMINAL:
                    state.outcomes[scan_id] = polled.json()["status"]
                    break


async def loop_lag(state: State, lags: list[float]) -> None:
    """How late this process's event loop wakes up: time the client itself adds to the figures."""
    while state.running:
        start = time.perf_counter()
        await asyncio.sleep(0.05)
        lags.append((time.perf_counter() - start - 0.05) * 1000)


async def drive(base: str, state: State, stats: Stats, users: int, think: float, lags: list[float]) -> None:
    tasks = [asyncio.create_task(scan_loop(base, state, stats)), asyncio.create_task(loop_lag(state, lags))]
    for n in range(users):
        # One user in four (the second, sixth, ...) is a script on the API; the others use a browser.
        user = api_user if n % 4 == 1 else browser_user
        tasks.append(asyncio.create_task(user(n, base, state, stats, think)))
    grace = max(0.0, state.stop_at - time.monotonic()) + 35  # the last requests may take up to their timeout
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            raise task.exception()


def warm_up(base: str, state: State) -> None:
    """One request to each kind of page before measuring (templates compiled, caches filled)."""
    with httpx.Client(base_url=base, timeout=60, headers=AUTH, trust_env=False) as client:
        paths = ["/", "/targets", "/scans", "/jobs", "/events", "/secrets", "/settings", "/ui/dashboard/jobs"]
        paths += [f"/targets/{tid}?tab={tab}" for tid in (state.lab_id, state.corp_id) for tab in TABS]
        paths += ["/api/v1/targets", "/api/v1/scans", "/api/v1/jobs", "/api/v1/events", "/api/v1/secrets/findings"]
        for path in paths:
            client.get(path).raise_for_status()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_problems(paths: list[Path]) -> list[str]:
    """Tracebacks and ERROR lines the servers logged."""
    found = []
    for path in paths:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if "Traceback" in line or " ERROR" in line or "ERROR/" in line or line.startswith("ERROR"):
                    found.append(f"{path.name}: {line.strip()[:200]}")
    return found


# --- the run ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, load it for args.duration seconds, stop everything; returns the figures."""
    stack = contextlib.ExitStack()
    try:
        return _run(args, stack)
    finally:
        # Whatever happened (an error, Ctrl+C, SIGTERM), stop every process started, without being interrupted.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            stack.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="assetmon-load-")))
    data_dir = tmp / "data"
    print(f"load test: {args.users} users, {args.duration:.0f} s, {args.workers} worker(s), in {tmp}", flush=True)

    lab = LabProcess(tmp / "lab")
    stack.callback(lab.stop)
    lab.start()

    started = time.perf_counter()
    corp_id = seed(data_dir, args.seed_subdomains, args.seed_ports)
    print(f"  seeded corp: {args.seed_subdomains:,} subdomains, {args.seed_ports:,} ports "
          f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip

    redis = RedisServer(tmp / "redis")
    stack.callback(redis.stop)
    redis.start()
    env = app_env(
        data_dir,
        redis.url,
        LOG_LEVEL="warning",
        **PRODUCTION_TIMINGS,
        **lab.info["env"],
        RESOLVERS=lab.info["resolver"],
        CT_URL=lab.info["ct_url"],
        HTTP_VERIFY_TLS="false",
    )
    workers = [Worker(env, name=f"load{i + 1}", concurrency=1) for i in range(args.workers)]
    for worker in workers:
        stack.callback(worker.stop)
        worker.start(wait=False)
    web = WebServer(env)
    stack.callback(web.stop)
    web.start()
    # (At LOG_LEVEL=warning a worker does not log "ready.": ask the web server how many answer its ping.)
    ready = lambda: (h := web.health())["mode"] == "celery" and h["workers"] >= len(workers)  # noqa: E731
    wait_for(ready, 90, interval=0.5, what=f"{len(workers)} worker(s) answering, celery mode")

    response = web.post("/api/v1/targets", json=lab.info["target"])
    if response.status_code != 201:
        raise RuntimeError(f"could not add the lab target: {response.status_code} {response.text}")
    state = State(lab_id=response.json()["target_id"], corp_id=corp_id, lab=lab.info, stop_at=0.0)
    warm_up(web.url, state)
    print(f"  ready in {time.perf_counter() - started:.1f} s; loading for {args.duration:.0f} s", flush=True)

    stats = Stats()
    load_before = os.getloadavg()[0]
    web_cpu = cpu_seconds(web.proc.pid)
    begun = time.monotonic()
    state.stop_at = begun + args.duration
    lags: list[float] = []
    asyncio.run(drive(web.url, state, stats, args.users, args.think, lags))
    elapsed = time.monotonic() - begun

    web_cpu = cpu_seconds(web.proc.pid) - web_cpu
    load_after = os.getloadavg()[0]
    listed = web.get("/api/v1/scans?limit=500").json()["scans"]
    finished = [s for s in state.scan_ids if state.outcomes.get(s) == "succeeded"]
    last = web.get(f"/api/v1/scans/{finished[-1]}").json() if finished else {}
    durations = [
        (datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["created_at"])).total_seconds()
        for s in listed
        if s["scan_id"] in finished and s["finished_at"]
    ]
    seeded_ids = {s["scan_id"] for s in listed if s["target_id"] == corp_id}
    run_scans = [s for s in listed if s["scan_id"] not in seeded_ids]
    problems = log_problems([web.log, *(w.log for w in workers)])

    outcomes = Counter(state.outcomes.values())
    others = Counter(s["status"] for s in run_scans if s["target_id"] != state.lab_id)
    result = last.get("result") or {}
    addresses = {a for sub in result.get("subdomains", []) for a in sub.get("addresses", [])}
    addresses |= {h["host"] for h in result.get("hosts", [])} | {s["host"] for s in result.get("services", [])}
    return {
        "users": args.users,
        "duration": args.duration,
        "elapsed": elapsed,
        "think": args.think,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "groups": {
            name: {
                "requests": len(g.samples),
                "errors": g.errors,
                "p50": percentile(g.samples, 50),
                "p95": percentile(g.samples, 95),
                "p99": percentile(g.samples, 99),
                "judged": name != SIGN_IN,
                "samples": g.samples,
            }
            for name, g in stats.groups.items()
        },
        "errors": dict(stats.error_log),
        "scans_completed": outcomes["succeeded"],
        "scans_failed": outcomes["failed"] + outcomes["cancelled"],
        "scans_started": len(state.scan_ids),
        "scan_outcomes": state.outcomes,
        "host_scans": dict(others),
        "scan_seconds": sorted(durations),
        "last_scan": {
            "counts": last.get("counts", {}),
            "warnings": result.get("warnings", []),
            "addresses": sorted(addresses),
            "loopback_only": all(a.startswith("127.") for a in addresses),
        },
        "web_cpu_seconds": web_cpu,
        "client_lag_ms": {"p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": max(lags, default=0.0)},
        "loadavg": [load_before, load_after],
        "log_problems": problems,
    }


def report(result: dict[str, Any]) -> bool:
    groups = result["groups"]
    elapsed = result["elapsed"]
    print(
        f"\nLoad test: {result['users']} users (think 0-{2 * result['think']:.2f} s) for {elapsed:.0f} s while scans"
        f" run; {result['workers']} Celery worker(s); {result['cpus']} CPUs; round-trip ms on loopback"
    )
    print(f"{'group':<30}{'requests':>9}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'errors':>8}")
    names = [g for g in GROUPS if g in groups] + sorted(set(groups) - set(GROUPS))
    all_samples: list[float] = []
    for name in names:
        g = groups[name]
        mark = "" if g["judged"] else " *"
        all_samples += g["samples"] if g["judged"] else []
        print(
            f"{name + mark:<30}{g['requests']:>9}{g['requests'] / elapsed:>8.1f}"
            f"{g['p50']:>8.1f}{g['p95']:>8.1f}{g['p99']:>8.1f}{g['errors']:>8}"
        )
    total = sum(g["requests"] for g in groups.values())
    errors = sum(g["errors"] for g in groups.values())
    print(
        f"{'total':<30}{total:>9}{total / elapsed:>8.1f}{percentile(all_samples, 50):>8.1f}"
        f"{percentile(all_samples, 95):>8.1f}{percentile(all_samples, 99):>8.1f}{errors:>8}"
    )
    print("* shown, not judged")
    print(
        f"\nlab scans: {result['scans_completed']} completed, {result['scans_failed']} failed or cancelled,"
        f" {result['scans_started']} started (one at a time, back to back)"
    )
    if result["scan_seconds"]:
        durations = result["scan_seconds"]
        print(f"lab scan time: median {percentile(durations, 50):.1f} s, max {durations[-1]:.1f} s (queued to done)")
    last = result["last_scan"]
    if last["counts"]:
        counts = ", ".join(f"{v} {k}" for k, v in last["counts"].items())
        print(f"last lab scan: {counts}; {len(last['warnings'])} warning(s); addresses {', '.join(last['addresses'])}")
    if result["host_scans"]:
        print("host scans started by API users: " + ", ".join(f"{n} {s}" for s, n in result["host_scans"].items()))
    load, lag = result["loadavg"], result["client_lag_ms"]
    print(
        f"web server CPU: {result['web_cpu_seconds']:.1f} s in {elapsed:.0f} s"
        f" ({100 * result['web_cpu_seconds'] / elapsed:.0f}% of one CPU); load average {load[0]:.1f} -> {load[1]:.1f};"
        f" client event-loop lag p50 {lag['p50']:.1f} ms, p95 {lag['p95']:.1f} ms"
    )
    for error, count in sorted(result["errors"].items(), key=lambda item: -item[1]):
        print(f"  error x{count}: {error}")
    for scan_id, status in result["scan_outcomes"].items():
        if status != "succeeded":
            print(f"  scan {scan_id}: {status}")
    if result["log_problems"]:
        print(f"server logs: {len(result['log_problems'])} traceback/ERROR line(s), first ones:")
        for line in result["log_problems"][:10]:
            print("  " + line)
    judged = [(name, g) for name, g in groups.items() if g["judged"] and g["requests"]]
    worst_name, worst = max(judged, key=lambda item: item[1]["p95"])
    failures = errors + result["scans_failed"] + result["host_scans"].get("failed", 0)
    ok = failures == 0 and worst["p95"] <= TARGET_P95_MS and result["scans_completed"] > 0
    verdict = "PASS" if ok else "FAIL"
    print(
        f"\n{failures} error(s) (requests and scans); worst p95 {worst['p95']:.1f} ms ({worst_name});"
        f" {result['scans_completed']} scan(s) completed; target: 0 errors, p95 <= {TARGET_P95_MS:.0f} ms: {verdict}"
    )
    return ok


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=8, help="concurrent simulated users (default 8)")
    parser.add_argument("--workers", type=int, default=2, choices=(1, 2), help="Celery workers (default 2)")
    parser.add_argument("--think", type=float, default=0.25, help="mean wait between a user's requests (s)")
    parser.add_argument("--seed-subdomains", type=int, default=5000)
    parser.add_argument("--seed-ports", type=int, default=20000)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--serve-lab", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_lab:
        return serve_lab(args.serve_lab)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; everything it started is stopped", file=sys.stderr)
        return 130
    ok = report(result)
    if args.json:
        slim = result | {
            "groups": {k: {kk: vv for kk, vv in v.items() if kk != "samples"} for k, v in result["groups"].items()}
        }
        slim["ok"] = ok
        args.json.write_text(json.dumps(slim, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
