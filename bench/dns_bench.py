"""DNS brute force speed and accuracy against local authoritative servers: dnsmasq and our DNS lab.

Builds a zone `bench.test` where a few percent of the candidate names exist (A, AAAA-only, CNAME), serves
it on 127.0.0.1 (free ports) with dnsmasq (`apt-get install dnsmasq`) and with tests/support/dnslab.py
(in its own process), then runs `brute_force` over every candidate. For contrast it also times plain
dnspython (`dns.asyncquery.udp`, one socket per query) on a slice of the names.
Targets: >= 5,000 names/s against dnsmasq; against both servers no answer lost (every existing name
found with its addresses, nothing else found, no DNS failures).

    .venv/bin/python bench/dns_bench.py [--names 20000] [--existing 0.05] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.scanners.dns import BUILTIN_WORDLIST, Resolver, brute_force, load_wordlist
from tests.support.dnslab import DNSLab
from tests.support.processes import free_port, wait_for

ZONE = "bench.test"
TARGET_RATE = 5000.0


def build_zone(count: int, existing: float) -> tuple[list[str], dict[str, dict[str, list[str]]]]:
    """Candidate labels (the shipped wordlist, then generated ones) and the records of the names that exist."""
    labels = load_wordlist(BUILTIN_WORDLIST)[:count]
    labels += [f"host-{i}" for i in range(count - len(labels))]
    step = max(1, round(1 / existing))
    records: dict[str, dict[str, list[str]]] = {}
    for i, label in enumerate(labels[::step]):
        octets = f"{(i >> 8) & 255}.{i & 255}"
        if i % 10 == 7:
            records[label] = {"AAAA": [f"fd00::{i:x}"]}  # AAAA only: brute force must ask twice
        elif i % 10 == 9:
            records[label] = {"CNAME": [f"{labels[0]}.{ZONE}"]}  # an alias of a name that exists
        else:
            records[label] = {"A": [f"10.1.{octets}"]}
    if labels[0] not in records:
        records[labels[0]] = {"A": ["10.0.0.1"]}
    return labels, records


def expected(records: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    out = {}
    for label, types in records.items():
        if "CNAME" in types:
            out[f"{label}.{ZONE}"] = records[types["CNAME"][0].split(".")[0]]["A"]
        else:
            out[f"{label}.{ZONE}"] = types.get("A") or types["AAAA"]
    return out


def dnsmasq_config(records: dict[str, dict[str, list[str]]], port: int, path: Path) -> None:
    lines = [
        f"port={port}",
        "listen-address=127.0.0.1",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        "no-poll",
        f"local=/{ZONE}/",  # answer for the zone from this config only: NXDOMAIN for every other name
        "cache-size=0",
        "dns-forward-max=10000",
    ]
    for label, types in records.items():
        name = f"{label}.{ZONE}"
        if "CNAME" in types:
            lines.append(f"cname={name},{types['CNAME'][0]}")
        else:
            lines.append(f"host-record={name},{(types.get('A') or types['AAAA'])[0]}")
    path.write_text("\n".join(lines) + "\n")


class Dnsmasq:
    def __init__(self, records: dict[str, dict[str, list[str]]], workdir: Path) -> None:
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not Path(binary).exists():
            raise SystemExit("dnsmasq is not installed: apt-get update && apt-get install -y dnsmasq")
        self.port = free_port()
        config = workdir / "dnsmasq.conf"
        dnsmasq_config(records, self.port, config)
        self.process = subprocess.Popen(
            [binary, "--keep-in-foreground", f"--conf-file={config}", "--pid-file=", "--user=root", "--log-facility=-"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.address = f"127.0.0.1:{self.port}"

    def wait_ready(self, probe_name: str) -> None:
        async def probe() -> bool:
            query = dns.message.make_query(probe_name, "A")
            answer = await dns.asyncquery.udp(query, "127.0.0.1", timeout=0.5, port=self.port)
            return answer.rcode() == dns.rcode.NOERROR

        def ready() -> bool:
            if self.process.poll() is not None:
                raise SystemExit(f"dnsmasq exited: {self.process.stderr.read().decode(errors='replace')}")  # type: ignore[union-attr]
            return asyncio.run(probe())

        wait_for(ready, 15, what="dnsmasq")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _serve_lab(records: dict[str, dict[str, list[str]]], conn) -> None:  # runs in a child process
    lab = DNSLab(ZONE, records).start()
    conn.send(lab.address)
    conn.recv()  # until the parent says stop
    lab.stop()


@dataclass
class Run:
    found: dict[str, list[str]]
    warnings: list[str]
    seconds: float
    stats: dict[str, int]


async def run_brute(address: str, labels: list[str], concurrency: int) -> Run:
    warnings: list[str] = []
    async with Resolver([address], timeout=2.0, retries=2, concurrency=concurrency, max_records=100) as resolver:
        start = time.perf_counter()
        found, zones = await brute_force(resolver, ZONE, labels, warnings=warnings)
        elapsed = time.perf_counter() - start
    if zones:
        warnings.append(f"unexpected wildcard zones {zones}")
    return Run(found, warnings, elapsed, dict(resolver.stats))


async def run_dnspython(address: str, labels: list[str], concurrency: int) -> Run:
    """The naive way: dnspython's async UDP query, one socket each, `concurrency` in flight."""
    host, port = address.rsplit(":", 1)
    semaphore = asyncio.Semaphore(concurrency)
    found: dict[str, list[str]] = {}
    warnings: list[str] = []

    async def one(label: str) -> None:
        name = f"{label}.{ZONE}"
        async with semaphore:
            try:
                answer = await dns.asyncquery.udp(dns.message.make_query(name, "A"), host, 2.0, int(port))
            except Exception as exc:  # no retries here: a lost packet is a lost answer
                warnings.append(f"{name}: {exc!r}")
                return
            if answer.rcode() == dns.rcode.NOERROR:
                found[name] = []

    start = time.perf_counter()
    await asyncio.gather(*(one(label) for label in labels))
    return Run(found, warnings, time.perf_counter() - start, {"udp": len(labels)})


def check(found: dict[str, list[str]], want: dict[str, list[str]]) -> tuple[int, int, int]:
    missing = sum(1 for name in want if name not in found)
    false = sum(1 for name in found if name not in want)
    wrong = sum(1 for name, addrs in want.items() if name in found and sorted(found[name]) != sorted(addrs))
    return missing, false, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=20000, help="candidate names tried (default 20000)")
    parser.add_argument("--existing", type=float, default=0.05, help="fraction of them that exist")
    parser.add_argument("--concurrency", type=int, default=500, help="queries in flight (DNS_CONCURRENCY)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server; the best one counts")
    parser.add_argument("--target", type=float, default=TARGET_RATE, help="names/s required against dnsmasq")
    parser.add_argument("--baseline-names", type=int, default=3000, help="names for the plain-dnspython row")
    args = parser.parse_args()

    labels, records = build_zone(args.names, args.existing)
    want = expected(records)
    print(f"zone {ZONE}: {len(labels)} candidate names, {len(want)} exist; concurrency {args.concurrency}")

    rows: list[tuple[str, int, Run, str, bool]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="dnsbench-") as tmp:
        dnsmasq = Dnsmasq(records, Path(tmp))
        fork = multiprocessing.get_context("fork")
        parent, child = fork.Pipe()
        lab_process = fork.Process(target=_serve_lab, args=(records, child), daemon=True)
        lab_process.start()
        lab_address = parent.recv()
        try:
            dnsmasq.wait_ready(f"{labels[0]}.{ZONE}")
            for server, address, rate_target in (("dnsmasq", dnsmasq.address, args.target), ("dnslab", lab_address, 0)):
                runs = [asyncio.run(run_brute(address, labels, args.concurrency)) for _ in range(args.rounds)]
                for run in runs:  # every round must be exact; the fastest one gives the rate
                    missing, false, wrong = check(run.found, want)
                    if missing or false or wrong or run.warnings:
                        failed = True
                        print(f"  {server}: {missing} missing, {false} false, {wrong} wrong; {run.warnings[:3]}")
                best = min(runs, key=lambda r: r.seconds)
                ok = all(check(r.found, want) == (0, 0, 0) and not r.warnings for r in runs)
                ok = ok and len(labels) / best.seconds >= rate_target
                failed |= not ok
                rows.append(
                    (f"brute_force vs {server}", len(labels), best, "{}/{}/{}".format(*check(best.found, want)), ok)
                )
            subset = labels[: args.baseline_names]
            base = asyncio.run(run_dnspython(dnsmasq.address, subset, args.concurrency))
            subset_names = {f"{label}.{ZONE}" for label in subset}
            base_want: dict[str, list[str]] = {name: [] for name in want if name in subset_names}
            missing, false, _ = check(base.found, base_want)
            rows.append(("dnspython udp() vs dnsmasq", len(subset), base, f"{missing}/{false}/-", True))
        finally:
            dnsmasq.stop()
            parent.send("stop")
            lab_process.join(10)

    print(
        f"{'run':<28} {'names':>6} {'found':>6} {'miss/false/wrong':>16} {'fail':>4} {'udp':>6} {'lost':>4} "
        f"{'tcp':>4} {'secs':>6} {'names/s':>8}  ok"
    )
    for title, names, run, accuracy, ok in rows:
        print(
            f"{title:<28} {names:>6} {len(run.found):>6} {accuracy:>16} {len(run.warnings):>4} "
            f"{run.stats.get('udp', 0):>6} {run.stats.get('timeouts', 0):>4} {run.stats.get('tcp', 0):>4} "
            f"{run.seconds:>6.2f} {names / run.seconds:>8.0f}  {'yes' if ok else 'NO'}"
        )
    print("udp: queries sent; lost: attempts that timed out (answered by a retry); tcp: truncated answers re-asked")
    print(f"targets: >= {args.target:.0f} names/s against dnsmasq; nothing missing, false, wrong or failed on both")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
