"""End-to-end recon scans of the loopback lab, through the API on Celery and in fallback, and the CLI.

The lab (tests/support/reconlab.py) is an organisation with DNS, CT, HTTP(S) servers, extra open
ports, a wildcard zone, a dangling CNAME, planted fake credentials and an excluded host; a scan
must find exactly what it holds and contact nothing out of scope.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import WebServer, Worker, app_env, run_cli, wait_for
from tests.support.reconlab import NAMES, ReconLab


@pytest.fixture
def recon_lab(tmp_path) -> Iterator[ReconLab]:
    lab = ReconLab(tmp_path / "words.txt")
    yield lab
    lab.stop()


@pytest.fixture(params=["celery", "fallback"])
def server(request, recon_lab, data_dir, redis_server) -> Iterator[WebServer]:
    if request.param == "celery":
        import redis

        redis.Redis.from_url(redis_server.url).flushdb()
        env = app_env(data_dir, redis_server.url, **recon_lab.env())
        worker = Worker(env).start()
    else:
        env = app_env(data_dir, UNREACHABLE_REDIS, **recon_lab.env())
        worker = None
    web = WebServer(env).start()
    if worker:
        wait_for(lambda: web.health()["mode"] == "celery", 20, what="celery mode")
    yield web
    web.stop()
    if worker:
        worker.stop()


def check_document(doc: dict, lab: ReconLab) -> None:
    subdomains = {s["name"]: s for s in doc["subdomains"]}
    assert set(subdomains) == NAMES
    assert subdomains["www.lab.test"]["addresses"] == ["127.0.0.10"]
    assert {"ct", "bruteforce"} <= set(subdomains["www.lab.test"]["sources"])
    assert subdomains["legacy-ct.lab.test"]["sources"] == ["ct"]
    assert subdomains["portal-x9.lab.test"]["sources"] == ["tls"]
    assert subdomains["dangling.lab.test"]["takeover"] == "Heroku"
    assert subdomains["lab.test"]["records"]["MX"] == ["10 mail.lab.test"]
    assert doc["wildcards"] == ["wild.lab.test"]

    hosts = {h["host"]: h for h in doc["hosts"]}
    assert set(hosts) == {"127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.14", "127.0.0.15"}
    assert hosts["127.0.0.10"]["open_ports"] == [lab.web.port]
    assert hosts["127.0.0.11"]["open_ports"] == sorted([lab.api.port, lab.extra.port])
    assert hosts["127.0.0.11"]["names"] == ["api.lab.test", "legacy-ct.lab.test"]
    assert hosts["127.0.0.12"]["open_ports"] == [lab.tls.port]
    assert hosts["127.0.0.14"]["open_ports"] == [] and hosts["127.0.0.15"]["open_ports"] == []

    services = {(s["host"], s["port"], s["scheme"], s["hostname"]): s for s in doc["services"]}
    assert set(services) == {
        ("127.0.0.10", lab.web.port, "http", "www.lab.test"),
        ("127.0.0.11", lab.api.port, "http", "api.lab.test"),
        ("127.0.0.11", lab.api.port, "http", "legacy-ct.lab.test"),
        ("127.0.0.12", lab.tls.port, "https", "app.lab.test"),
        ("127.0.0.12", lab.tls.port, "https", "portal-x9.lab.test"),
    }
    www = services[("127.0.0.10", lab.web.port, "http", "www.lab.test")]
    assert www["status"] == 200 and www["title"] == "Lab app"
    portal = services[("127.0.0.12", lab.tls.port, "https", "app.lab.test")]
    assert portal["title"] == "Lab portal" and set(portal["tls"]["sans"]) == {"app.lab.test", "portal-x9.lab.test"}

    assert {(s["url"].split(str(lab.web.port), 1)[1], s["rule"]) for s in doc["secrets"]} == {
        (p.path, p.rule) for p in lab.planted
    }
    assert all(s["url"].startswith(f"http://www.lab.test:{lab.web.port}/") for s in doc["secrets"])
    text = json.dumps(doc)
    assert not [p.rule for p in lab.planted if p.value in text]  # redacted
    assert any("takeover candidate" in w for w in doc["warnings"])

    # Nothing out of scope was contacted: not the excluded host, not the off-site script host.
    assert lab.excluded.accepted == 0 and lab.offsite.requests == []


def test_a_scan_maps_the_lab_exactly(server, recon_lab):
    target = server.post("/api/v1/targets", json=recon_lab.target())
    assert target.status_code == 201, target.text
    started = server.post("/api/v1/scans", json={"target": "lab"})
    assert started.status_code == 202, started.text
    body = started.json()
    assert set(body) == {"scan_id", "job_id", "status", "backend"} and body["status"] == "queued"

    def finished() -> dict | None:
        scan = server.get(f"/api/v1/scans/{body['scan_id']}").json()
        return scan if scan["status"] not in ("queued", "running") else None

    scan = wait_for(finished, 120, interval=0.5, what="scan to finish")
    assert scan["status"] == "succeeded", scan
    assert scan["stage"] == "done" and scan["progress"] == 100 and scan["message"].startswith("Done:")
    check_document(scan["result"], recon_lab)
    assert scan["counts"]["secrets"] == len(recon_lab.planted)
    listed = server.get("/api/v1/scans").json()
    assert [s["scan_id"] for s in listed["scans"]] == [body["scan_id"]]


def test_the_cli_prints_the_same_document(tmp_path, recon_lab):
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS, **recon_lab.env())
    options = recon_lab.target()["scan_options"]
    args = ["--resolver", options["resolvers"][0], "--ct-url", options["ct_url"], "--ports", options["ports"]]
    args += ["--http-ports", ",".join(map(str, options["http_ports"]))]
    created = run_cli(env, "scan", "lab.test", *args, "--modules", "subdomains,dns", "--wait", "--format", "json")
    assert created.returncode == 0, created.stderr
    quick = json.loads(created.stdout)
    # A quick target has no exclude rules; only DNS ran (the modules limit the stages): nothing was contacted.
    assert "excluded.lab.test" in {s["name"] for s in quick["subdomains"]}
    assert quick["services"] == [] and {h["host"] for h in quick["hosts"]} >= {"127.0.0.10", "127.0.0.13"}
    assert all(h["open_ports"] == [] for h in quick["hosts"]) and recon_lab.excluded.accepted == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "'target' is required"),
        ({"target": ""}, "a target is required"),
        ({"target": "10.0.0.0/8"}, "the limit is /16"),
        ({"target": "lab.test", "modules": ["ports", "nmap"]}, "unknown module(s) nmap"),
        ({"target": "lab.test", "options": {"ports": "1-70000"}}, "ports:"),
        ({"target": "lab.test", "options": {"resolvers": ["not a resolver:x"]}}, "resolvers:"),
        ({"target": "lab.test", "options": {"ct_url": "https://crt.sh/"}}, "{domain}"),
        ({"target": "lab.test", "options": {"http_ports": [0]}}, "http_ports"),
        ({"target": "lab.test", "options": {"threads": 9}}, "unknown option(s) threads"),
        ({"target": "lab.test", "extra": 1}, "unknown field(s): extra"),
    ],
)
def test_bad_scan_requests_are_refused_and_write_nothing(shared_web, body, needle):
    response = shared_web.post("/api/v1/scans", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"] and "Traceback" not in response.text
    assert shared_web.get("/api/v1/scans").json()["count"] == 0
    assert shared_web.get("/api/v1/jobs").json()["count"] == 0


def test_targets_crud_and_validation(fallback_web):
    created = fallback_web.post("/api/v1/targets", json={"name": "acme", "domains": ["Bücher.example"]})
    assert created.status_code == 201, created.text
    target = created.json()
    assert target["domains"] == ["xn--bcher-kva.example"] and target["target_id"]
    assert fallback_web.post("/api/v1/targets", json={"name": "acme", "domains": ["a.example"]}).status_code == 409
    for bad, needle in [
        ({"name": "x", "domains": ["not a domain"]}, "not a domain name"),
        ({"name": "x", "cidrs": ["10.0.0.0/8"]}, "the limit is /16"),
        ({"name": "x"}, "at least one domain"),
        ({"domains": ["a.example"]}, "'name' is required"),
        ({"name": "x", "domains": ["a.example"], "scan_options": {"ports": "abc"}}, "ports:"),
    ]:
        response = fallback_web.post("/api/v1/targets", json=bad)
        assert response.status_code == 422 and needle in response.json()["detail"], response.text
    tid = target["target_id"]
    patched = fallback_web.patch(f"/api/v1/targets/{tid}", json={"cidrs": ["192.0.2.0/28"]}).json()
    assert patched["cidrs"] == ["192.0.2.0/28"] and patched["domains"] == ["xn--bcher-kva.example"]
    assert fallback_web.patch(f"/api/v1/targets/{tid}", json={"cidrs": ["bad"]}).status_code == 422
    assert fallback_web.get(f"/api/v1/targets/{tid}").json()["cidrs"] == ["192.0.2.0/28"]
    assert fallback_web.get("/api/v1/targets").json()["count"] == 1
    assert fallback_web.delete(f"/api/v1/targets/{tid}").status_code == 204
    assert fallback_web.get(f"/api/v1/targets/{tid}").status_code == 404


def test_a_running_scan_can_be_cancelled(fallback_web):
    # A long scan: every port of six addresses.
    started = fallback_web.post(
        "/api/v1/scans", json={"target": "127.0.0.64/29", "modules": ["ports"], "options": {"ports": "1-65535"}}
    ).json()
    scan_id = started["scan_id"]
    wait_for(lambda: fallback_web.get(f"/api/v1/scans/{scan_id}").json()["stage"] == "ports", 30, what="port scan")
    cancelled = fallback_web.post(f"/api/v1/scans/{scan_id}/cancel")
    assert cancelled.status_code == 200
    final = wait_for(
        lambda: (s := fallback_web.get(f"/api/v1/scans/{scan_id}").json())["status"] in ("cancelled",) and s,
        30,
        what="cancelled",
    )
    assert final["stage"] == "ports" and final["status"] == "cancelled" and final["result"]["hosts"]
    assert fallback_web.post("/api/v1/scans/" + "0" * 32 + "/cancel").status_code == 404


def test_ports_command(tmp_path):
    import socket

    listener = socket.create_server(("127.0.0.33", 0))
    port = listener.getsockname()[1]
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS)
    try:
        done = run_cli(env, "ports", "127.0.0.33", "127.0.0.34", "--ports", f"{port},{port + 1}", "--format", "json")
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "hosts": [{"host": "127.0.0.33", "open_ports": [port]}, {"host": "127.0.0.34", "open_ports": []}]
    }
    bad = run_cli(env, "ports", "127.0.0.1", "--ports", "0-5")
    assert bad.returncode == 2 and "--ports" in bad.stderr and "Traceback" not in bad.stderr
    assert run_cli(env, "ports", "10.0.0.0/8").returncode == 2


def test_hostile_targets_end_in_warnings_not_a_stuck_or_failed_scan(tmp_path):
    """Slow-loris, endless redirects, huge and bomb bodies, garbage on a port, a DNS name with thousands
    of addresses: the scan finishes, bounded, and says what went wrong."""
    from tests.support.dnslab import DNSLab
    from tests.support.tlslab import Garbage, HugeBody, RedirectLoop, SlowLoris

    servers = [
        SlowLoris("127.0.0.50", phase="body", interval=0.2).start(),
        RedirectLoop("127.0.0.51").start(),
        HugeBody("127.0.0.52", gzip=True).start(),
        Garbage("127.0.0.53", mode="junk").start(),
        Garbage("127.0.0.54", mode="silent").start(),
    ]
    big = [f"127.0.{i // 250 + 100}.{i % 250 + 1}" for i in range(3000)]
    hosts = {
        "loris": "127.0.0.50",
        "loop": "127.0.0.51",
        "huge": "127.0.0.52",
        "junk": "127.0.0.53",
        "mute": "127.0.0.54",
    }
    dns = DNSLab("hostile.test", {"big": {"A": big}} | {k: {"A": [v]} for k, v in hosts.items()}).start()
    words = tmp_path / "words.txt"
    words.write_text("\n".join(["big", *hosts]) + "\n")
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS, WORDLIST_FILE=str(words), HTTP_TIMEOUT_SECONDS="3")
    ports = sorted({s.port for s in servers})
    try:
        done = run_cli(
            env,
            "scan",
            "hostile.test",
            "--modules", "subdomains,dns,http",
            "--resolver", dns.address,
            "--ct-url", "http://127.0.0.1:1/ct?q={domain}",  # a dead CT source: a warning
            "--http-ports", ",".join(map(str, ports)),
            "--wait", "--format", "json",
            timeout=180,
        )  # fmt: skip
    finally:
        dns.stop()
        for server in servers:
            server.stop()
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    names = {s["name"]: s for s in doc["subdomains"]}
    assert len(names["big.hostile.test"]["addresses"]) == 100  # DNS_MAX_RECORDS
    assert any("certificate transparency" in w for w in doc["warnings"])
    warned = " ".join(doc["warnings"])
    for name in ("loris", "loop", "junk", "mute"):
        assert f"{name}.hostile.test" in warned, doc["warnings"]
    (huge,) = [s for s in doc["services"] if s["hostname"] == "huge.hostile.test"]
    assert huge["truncated"] is True  # read up to HTTP_MAX_BODY_BYTES of an endless gzip stream, then let go


def test_a_scan_with_the_checks_module_reports_an_exposed_repository(tmp_path, recon_lab):
    """The opt-in checks stage, in a real scan: the lab's web app serves its .git/config; only that
    service is reported, through the scan's own addresses, and the plain pages trip nothing but the
    header checks."""
    recon_lab.web.add(
        "/.git/config",
        '[core]\n\trepositoryformatversion = 0\n\tbare = false\n[remote "origin"]\n\turl = https://git.lab.test/app.git\n',
        content_type="text/plain",
    )
    env = app_env(tmp_path / "data", UNREACHABLE_REDIS, **recon_lab.env())
    options = recon_lab.target()["scan_options"]
    args = ["--resolver", options["resolvers"][0], "--ct-url", options["ct_url"], "--ports", options["ports"]]
    args += ["--http-ports", ",".join(map(str, options["http_ports"]))]
    done = run_cli(
        env, "scan", "lab.test", *args, "--modules", "subdomains,dns,http,checks", "--wait", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    found = {(c["check"], c["url"]) for c in doc["checks"] if "headers" not in c["tags"]}
    assert found == {("git-config-exposed", f"http://www.lab.test:{recon_lab.web.port}/.git/config")}
    git = next(c for c in doc["checks"] if c["check"] == "git-config-exposed")
    assert git["severity"] == "medium" and git["fingerprint"] and "https://git.lab.test/app.git" in git["extracted"]
    assert recon_lab.excluded.accepted == 0 and recon_lab.offsite.requests == []
