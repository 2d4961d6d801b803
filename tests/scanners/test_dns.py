"""DNS scanner against the loopback DNS lab: records, bulk resolution, wildcards, brute force, takeover hints,
hostile answers, packet loss and dead servers. Every query goes to 127.0.0.1; resolvers are always explicit."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from app.scanners import dns
from app.scanners.dns import DNSFailure, Resolver, ResolverError
from tests.support.dnslab import DNSLab

BIG = [f"10.9.{i // 256}.{i % 256}" for i in range(3000)]
LONG_TXT = "k=" + "x" * 5000

LAB_RECORDS: dict[str, dict[str, list[str]]] = {
    "www": {"A": ["127.0.0.10"]},
    "api": {"A": ["127.0.0.11", "127.0.0.12"], "AAAA": ["fd00::11"]},
    "v6": {"AAAA": ["fd00::6"]},
    "alias": {"CNAME": ["www.lab.test"]},
    "dangling": {"CNAME": ["ghost-app.herokuapp.com"]},
    "external": {"CNAME": ["app.elsewhere.test"]},
    "app.elsewhere.test.": {"A": ["127.0.0.20"]},
    "@": {"MX": ["10 mail.lab.test", "20 Backup-MX.lab.test"], "TXT": ["v=spf1 -all", LONG_TXT]},
    "mail": {"A": ["127.0.0.25"]},
    "*.wild": {"A": ["127.0.0.99"]},
    "big": {"A": BIG},
    "broken": {"A": ["127.0.0.66"]},
}


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        async with asyncio.timeout(20):  # a hang fails the test instead of the run
            return await coro

    return asyncio.run(guarded())


def resolver(lab: DNSLab, **kw: Any) -> Resolver:
    options = {"timeout": 1.0, "retries": 2, "concurrency": 50, "max_records": 100} | kw
    return Resolver([lab.address], **options)


@pytest.fixture(scope="module")
def lab() -> Iterator[DNSLab]:
    with DNSLab("lab.test", LAB_RECORDS, servfail={"broken"}) as server:
        yield server


@pytest.fixture(scope="module")
def wild_lab() -> Iterator[DNSLab]:
    records = {
        "*": {"A": ["127.0.0.99"]},
        "www": {"A": ["127.0.0.10"]},
        "same": {"A": ["127.0.0.99"]},  # a real name, but indistinguishable from the wildcard
        "v6": {"AAAA": ["fd00::6"]},
        "*.dev": {"A": ["127.0.0.98"]},
        "api.dev": {"A": ["127.0.0.12"]},
    }
    with DNSLab("wc.test", records) as server:
        yield server


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- resolver specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("192.0.2.53", ("192.0.2.53", 53)),
        (" 198.51.100.53 ", ("198.51.100.53", 53)),
        ("[::1]:53", ("::1", 53)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_parse_resolver(spec: str, expected: tuple[str, int]) -> None:
    assert dns.parse_resolver(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "dns.google",
        "192.0.2.53:0",
        "192.0.2.53:65536",
        "192.0.2.53:dns",
        "192.0.2.53:",
        "[::1",
        "[::1]53",
        "300.1.1.1",
    ],
)
def test_parse_resolver_rejects_garbage(spec: str) -> None:
    with pytest.raises(ResolverError) as info:
        dns.parse_resolver(spec)
    assert isinstance(info.value, ValueError)
    assert "expected" in str(info.value) or repr(spec) in str(info.value)


def test_resolvers_from_settings_and_resolv_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("RESOLVERS", "127.0.0.1:5300, [::1]:5301,127.0.0.1:5300")
    get_settings.cache_clear()
    try:
        assert dns.resolvers_from_settings() == [("127.0.0.1", 5300), ("::1", 5301)]
        assert Resolver().nameservers == [("127.0.0.1", 5300), ("::1", 5301)]
    finally:
        get_settings.cache_clear()

    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n")
    assert dns.system_resolvers(conf) == [("127.0.0.53", 53), ("fe80::1%eth0", 53)]
    conf.write_text("options edns0\n")
    with pytest.raises(ResolverError, match="no nameserver"):
        dns.system_resolvers(conf)


# --- records ----------------------------------------------------------------------------------------------


def test_records_of_each_type(lab: DNSLab) -> None:
    async def scenario() -> dict[str, dict[str, list[str]]]:
        async with resolver(lab) as r:
            return {
                "apex": await dns.records(r, "lab.test"),
                "api": await dns.records(r, "API.Lab.Test."),  # normalised
                "alias": await dns.records(r, "alias.lab.test"),
            }

    got = run(scenario())
    apex = got["apex"]
    assert apex["MX"] == ["10 mail.lab.test", "20 backup-mx.lab.test"]
    assert apex["NS"] == ["ns1.lab.test"]
    assert apex["TXT"][0] == "v=spf1 -all"
    assert len(apex["TXT"][1]) == dns.MAX_TXT_CHARS and apex["TXT"][1].startswith("k=xxx")  # joined, then capped
    assert apex["A"] == apex["AAAA"] == apex["CNAME"] == []
    assert got["api"] == {
        "A": ["127.0.0.11", "127.0.0.12"],
        "AAAA": ["fd00::11"],
        "CNAME": [],
        "MX": [],
        "NS": [],
        "TXT": [],
    }
    assert got["alias"]["CNAME"] == ["www.lab.test"]
    assert got["alias"]["A"] == ["127.0.0.10"]  # followed through the alias


def test_lookup_follows_a_cname_the_server_left_unresolved() -> None:
    records = {"ext": {"CNAME": ["app.elsewhere.test"]}, "app.elsewhere.test.": {"A": ["127.0.0.20"]}}
    with DNSLab("lab.test", records, chase_cnames=False) as plain:

        async def scenario() -> dns.Answer:
            async with resolver(plain) as r:
                return await r.lookup("ext.lab.test", "A")

        answer = run(scenario())
    assert answer.values == ("127.0.0.20",) and answer.cnames == ("app.elsewhere.test",)
    assert [q.name for q in plain.queries()] == ["ext.lab.test", "app.elsewhere.test"]


def test_hostile_answer_with_thousands_of_records_is_capped(lab: DNSLab) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with resolver(lab, max_records=100) as r, resolver(lab, max_records=5) as small:
            return await r.query("big.lab.test", "A"), await small.query("big.lab.test", "A")

    capped, tiny = run(scenario())
    assert capped == BIG[:100]
    assert tiny == BIG[:5]
    assert lab.queries("big", "tcp")  # too big for UDP: truncated, then fetched over TCP


# --- bulk resolution --------------------------------------------------------------------------------------


def test_resolve_names(lab: DNSLab) -> None:
    names = ["www.lab.test", "API.lab.test", "v6.lab.test", "alias.lab.test", "dangling.lab.test", "nope.lab.test"]
    names += [f"n{i}.lab.test" for i in range(250)] + ["bad name.lab.test"]
    calls: list[tuple[int, int]] = []
    warnings: list[str] = []

    async def scenario() -> dict[str, dict[str, list[str]]]:
        async with resolver(lab) as r:
            return await dns.resolve_names(r, names, lambda done, total: calls.append((done, total)), warnings=warnings)

    got = run(scenario())
    assert len(got) == 256
    assert got["www.lab.test"] == {"A": ["127.0.0.10"], "AAAA": [], "CNAME": []}
    assert got["api.lab.test"] == {"A": ["127.0.0.11", "127.0.0.12"], "AAAA": ["fd00::11"], "CNAME": []}
    assert got["v6.lab.test"] == {"A": [], "AAAA": ["fd00::6"], "CNAME": []}
    assert got["alias.lab.test"] == {"A": ["127.0.0.10"], "AAAA": [], "CNAME": ["www.lab.test"]}
    assert got["dangling.lab.test"] == {"A": [], "AAAA": [], "CNAME": ["ghost-app.herokuapp.com"]}
    assert got["nope.lab.test"] == got["n7.lab.test"] == {"A": [], "AAAA": [], "CNAME": []}
    assert calls[0] == (100, 256) and calls[-1] == (256, 256)
    assert len(warnings) == 1 and "bad name" in warnings[0]


def test_progress_exception_propagates_and_nothing_keeps_running(lab: DNSLab) -> None:
    class Cancelled(Exception):
        pass

    def progress(done: int, total: int) -> None:
        raise Cancelled(f"job cancelled at {done}/{total}")

    async def scenario() -> tuple[set[asyncio.Task[Any]], int]:
        async with resolver(lab) as r:
            with pytest.raises(Cancelled, match="cancelled at 100/"):
                await dns.resolve_names(r, [f"p{i}.lab.test" for i in range(400)], progress)
            with pytest.raises(Cancelled):
                await dns.brute_force(r, "lab.test", [f"b{i}" for i in range(400)], progress)
            others = asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]
            pending = sum(len(c.pending) for pool in r._state.channels.values() for c in pool)  # type: ignore[union-attr]
            return others, pending

    others, pending = run(scenario())
    assert not others and pending == 0


# --- wildcards and brute force ----------------------------------------------------------------------------


def test_wildcard_answers(lab: DNSLab, wild_lab: DNSLab) -> None:
    async def scenario() -> tuple[set[str], set[str], set[str]]:
        async with resolver(lab) as r, resolver(wild_lab) as w:
            return (
                await dns.wildcard_answers(w, "wc.test"),
                await dns.wildcard_answers(r, "lab.test"),
                await dns.wildcard_answers(r, "wild.lab.test"),
            )

    wild, none, below = run(scenario())
    assert wild == {"127.0.0.99"}
    assert none == set()
    assert below == {"127.0.0.99"}
    probes = [q.name for q in lab.queries() if q.name.endswith(".wild.lab.test")]
    assert probes and all(len(p.split(".")[0]) == 12 for p in probes)  # random labels


def test_brute_force_in_a_wildcard_zone(wild_lab: DNSLab) -> None:
    async def scenario() -> tuple[dict[str, list[str]], list[str]]:
        async with resolver(wild_lab) as r:
            return await dns.brute_force(r, "wc.test", ["www", "same", "v6", "nothing", "dev", "random1", "WWW"])

    found, zones = run(scenario())
    # "same" and "nothing"/"random1" answer exactly like the wildcard: dropped. "dev" has its own wildcard.
    assert found == {"www.wc.test": ["127.0.0.10"], "v6.wc.test": ["fd00::6"], "dev.wc.test": []}
    assert zones == ["wc.test", "dev.wc.test"]


def test_brute_force_without_wildcard(lab: DNSLab) -> None:
    labels = ["www", "api", "v6", "alias", "dangling", "wild", "nope", "big", "mail", "zzz", "bad label!"]
    warnings: list[str] = []

    async def scenario() -> tuple[dict[str, list[str]], list[str]]:
        async with resolver(lab) as r:
            return await dns.brute_force(r, "lab.test", labels, warnings=warnings)

    found, zones = run(scenario())
    assert found == {
        "alias.lab.test": ["127.0.0.10"],
        "api.lab.test": ["127.0.0.11", "127.0.0.12"],
        "big.lab.test": BIG[:100],
        "dangling.lab.test": [],  # exists (a CNAME) even though its target does not
        "mail.lab.test": ["127.0.0.25"],
        "v6.lab.test": ["fd00::6"],
        "wild.lab.test": [],  # an empty non-terminal above *.wild
        "www.lab.test": ["127.0.0.10"],
    }
    assert zones == ["wild.lab.test"]  # the sub-level wildcard, found by probing below each name
    assert len(warnings) == 1 and "bad label!" in warnings[0]


def test_shipped_wordlist() -> None:
    words = dns.load_wordlist(dns.BUILTIN_WORDLIST)
    assert len(words) >= 2000
    assert len(set(words)) == len(words)
    assert {"www", "mail", "api", "dev", "staging", "vpn", "jenkins", "grafana", "api1", "dev-api"} <= set(words)
    raw = [line.strip() for line in dns.BUILTIN_WORDLIST.read_text().splitlines() if line.strip()]
    assert raw == words  # the file itself is clean: nothing skipped or rewritten


def test_load_wordlist_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "words.txt"
    path.write_text("# mine\nWWW\nwww\n\n-bad\nbad-\nhas space\nbücher\n_dmarc\na.b\n" + "x" * 64 + "\nok\n")
    assert dns.load_wordlist(path) == ["www", "xn--bcher-kva", "_dmarc", "a.b", "ok"]

    from app.settings import get_settings

    monkeypatch.setenv("WORDLIST_FILE", str(path))
    get_settings.cache_clear()
    try:
        assert dns.load_wordlist()[0] == "www"
    finally:
        get_settings.cache_clear()


# --- takeover ---------------------------------------------------------------------------------------------


def test_takeover_candidate_table() -> None:
    assert dns.takeover_candidate("ghost-app.herokuapp.com", resolves=False) == "Heroku"
    assert dns.takeover_candidate("ghost-app.herokuapp.com.", resolves=True) is None
    assert dns.takeover_candidate("Old-Site.AzureWebsites.net", resolves=False) == "Microsoft Azure"
    assert dns.takeover_candidate("media.s3.eu-west-1.amazonaws.com", resolves=False) == "AWS S3"
    assert dns.takeover_candidate("d111111abcdef8.cloudfront.net", resolves=False) is None  # not claimable
    assert dns.takeover_candidate("herokuapp.com", resolves=False) is None
    assert dns.takeover_candidate("www.example.com", resolves=False) is None


def test_takeover_table_examples_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "takeover.toml"
    bad.write_text(
        '[[provider]]\nname = "X"\nstatus = "vulnerable"\npatterns = ["*.x.example"]\nexamples = ["a.y.example"]\n'
    )
    with pytest.raises(ValueError, match="matches no pattern"):
        dns.load_takeover_providers(bad)


def test_takeover_check_flags_the_dangling_cname(lab: DNSLab) -> None:
    async def scenario() -> tuple[list[str], str | None, str | None, str | None]:
        async with resolver(lab) as r:
            target = (await dns.records(r, "dangling.lab.test"))["CNAME"]
            return (
                target,
                await dns.takeover_check(r, target[0]),
                await dns.takeover_check(r, "www.lab.test"),
                await dns.takeover_check(r, "app.elsewhere.test"),
            )

    asked_www = len(lab.queries("www"))
    target, dangling, unrelated, live = run(scenario())
    assert target == ["ghost-app.herokuapp.com"]
    assert dangling == "Heroku"
    assert unrelated is None and live is None
    assert len(lab.queries("www")) == asked_www  # not a provider's namespace: no lookup at all


# --- faults -----------------------------------------------------------------------------------------------


def test_dropped_packets_are_retried_and_no_answer_is_lost() -> None:
    names = [f"h{i}" for i in range(40)]
    with DNSLab("loss.test", {n: {"A": [f"127.0.1.{i}"]} for i, n in enumerate(names)}) as lossy:
        for i, name in enumerate(names):
            lossy.drop(name, 1 + i % 2)  # every name loses its first query, half of them the second too

        async def scenario() -> tuple[dict[str, dict[str, list[str]]], dict[str, int]]:
            async with resolver(lossy, timeout=0.5, retries=3) as r:
                got = await dns.resolve_names(r, [f"{n}.loss.test" for n in names], warnings=warnings)
                return got, dict(r.stats)

        warnings: list[str] = []
        got, stats = run(scenario())
        assert not warnings
        assert {name: v["A"] for name, v in got.items()} == {
            f"{n}.loss.test": [f"127.0.1.{i}"] for i, n in enumerate(names)
        }
        assert stats["timeouts"] >= 60  # each drop cost one timeout (more only if the lab was slow)
        assert len(lossy.queries("h1", "udp")) >= 3 and [q.answered for q in lossy.queries("h1", "udp")][:3] == [
            False,
            False,
            True,
        ]


def test_servfail_is_retried_then_reported(lab: DNSLab) -> None:
    warnings: list[str] = []

    async def scenario() -> dict[str, list[str]]:
        async with resolver(lab, retries=2) as r:
            with pytest.raises(DNSFailure, match="SERVFAIL") as info:
                await r.query("broken.lab.test", "A")
            assert info.value.name == "broken.lab.test" and info.value.rdtype == "A"
            return await dns.records(r, "broken.lab.test", types=("A", "MX"), warnings=warnings)

    before = len(lab.queries("broken"))
    got = run(scenario())
    assert len(lab.queries("broken")) - before == 3 * 3  # the query, then A and MX from records(): 3 tries each
    assert got == {"A": [], "MX": []}
    assert len(warnings) == 2 and all("SERVFAIL" in w for w in warnings)


def test_dead_resolver_fails_fast() -> None:
    dead = Resolver([f"127.0.0.1:{closed_port()}"], timeout=5.0, retries=2, concurrency=10, max_records=10)
    warnings: list[str] = []

    async def scenario() -> None:
        async with dead:
            async with asyncio.timeout(3):  # port unreachable comes back at once: no waiting for the 5 s timeout
                with pytest.raises(DNSFailure, match="refused"):
                    await dead.query("www.lab.test", "A")
                with pytest.raises(DNSFailure):
                    await dns.brute_force(dead, "lab.test", ["www", "api"])
                got = await dns.resolve_names(dead, ["www.lab.test", "api.lab.test"], warnings=warnings)
        assert got == {n: {"A": [], "AAAA": [], "CNAME": []} for n in ("www.lab.test", "api.lab.test")}

    run(scenario())
    assert len(warnings) == 2 and all("refused" in w for w in warnings)


def test_silent_resolver_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blackhole:  # bound, never answers
        blackhole.bind(("127.0.0.1", 0))
        silent = Resolver([blackhole.getsockname()], timeout=0.2, retries=1, concurrency=10, max_records=10)

        async def scenario() -> None:
            async with silent:
                with pytest.raises(DNSFailure, match="no answer from 127.0.0.1") as info:
                    await silent.query("www.lab.test", "A")
                assert "2 tries" in str(info.value)

        run(scenario())


def test_forged_and_mismatched_answers_are_ignored() -> None:
    """A server that first answers for another question (a forgery, or a stale answer) and then properly."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        with server:
            data, client = server.recvfrom(4096)
            request = DNSRecord.parse(data)
            forged = DNSRecord.question("evil.lab.test")
            forged.header.id, forged.header.qr = request.header.id, 1
            forged.add_answer(RR("evil.lab.test", QTYPE.A, rdata=A("6.6.6.6")))
            server.sendto(forged.pack(), client)
            reply = request.reply()
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.10")))
            server.sendto(reply.pack(), client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def scenario() -> list[str]:
        async with Resolver([server.getsockname()], timeout=2, retries=0, concurrency=1, max_records=10) as r:
            return await r.query("www.lab.test", "A")

    assert run(scenario()) == ["127.0.0.10"]
    thread.join(5)


def test_resolver_survives_a_new_event_loop(lab: DNSLab) -> None:
    r = resolver(lab)
    assert run(r.query("www.lab.test", "A")) == ["127.0.0.10"]
    assert run(r.query("www.lab.test", "A")) == ["127.0.0.10"]  # second asyncio.run: fresh sockets
    run(r.aclose())
