"""Fuzzing the JSON API: every operation under /api/ of a real AssetMon web server, with schemathesis.

No request may be answered with a 5xx (schemathesis's `not_a_server_error` check), and every answer
must match the response schema the API publishes (`response_schema_conformance`). The operations that
take a free-form JSON object (targets, scans, notification channels, schedules, imports: their schema
only says "object") are fuzzed once more with hypothesis, with bodies built from the same strategies as
tests/test_parsers_properties.py, so that the fuzz reaches past "unknown field".

HOW THE TRAFFIC STAYS ON LOOPBACK. Fuzzed requests create targets with public domains and networks,
start scans of them, queue JavaScript scans of public URLs and add notification channels with any URL.
None of that may reach the network (the project's rule: nothing but 127.0.0.0/8):

* Every job is queued and none ever runs. The web server uses a live redis-server on 127.0.0.1 and
  there is no Celery worker. Redis alone is not enough: when no worker answers a ping the web server
  runs jobs itself (fallback mode), and its scheduler tick then sends notifications. So a stand-in
  "worker" process (FAKE_WORKER below: Celery's own remote-control mailbox, nothing of ours) answers the
  web server's pings and says it consumes every queue. The web server therefore publishes every job to
  Redis, where nothing consumes it, and leaves the scheduler tick to Celery beat, which does not run.
  Before every request the test checks that the stand-in is alive and the web server is in celery
  mode; at the end it checks that no job ever ran (each one is still queued or cancelled, on Celery).
* Should a scan run all the same, its DNS and certificate transparency sources are dead ends on
  loopback: RESOLVERS is 127.0.0.1 on a free port, CT_URL is http://127.0.0.1 on a free port.
* The one operation that sends something inside the request, POST /api/v1/notifications/{id}/test
  (it delivers to the channel's URL at once), is left out of the schemathesis run, where channels get
  arbitrary URLs. It is fuzzed on its own, by test_send_test_reaches_only_loopback_channels, after
  every channel has been deleted and replaced by channels pointing at a receiver on 127.0.0.1 (and an
  SMTP port on 127.0.0.1 where nothing listens); the test checks the receiver got every message.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.pytest._test_builder import build_operation_test
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.monitor.notify.channels import EVENT_TYPES, KINDS, SEVERITIES
from app.settings import QUEUES
from tests.conftest import UNREACHABLE_REDIS
from tests.support.processes import (
    AUTH,
    ROOT,
    VENV_BIN,
    RedisServer,
    WebServer,
    app_env,
    free_port,
    spawn,
    stop,
    wait_for,
)
from tests.support.receiver import Receiver
from tests.test_parsers_properties import (
    domains,
    json_values,
    numberish,
    scan_options,
    schedule_values,
    target_bodies,
    text_with,
)

# Generated requests per operation (plus schemathesis's boundary-value "coverage" cases). 45 operations:
# the whole file runs in 40-80 s on this 2-CPU machine (more while other work shares it).
MAX_EXAMPLES = 60
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
BODIES = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
SEND_TEST = "/api/v1/notifications/{channel_id}/test"

# A stand-in for a Celery worker that runs nothing: it answers the remote-control broadcasts the web
# server sends to find workers (ping, active_queues) and ignores every other command. It consumes no
# task queue, so every published job stays in Redis.
FAKE_WORKER = r"""
import socket, sys
from celery import Celery

url, hostname, queues = sys.argv[1], sys.argv[2], sys.argv[3].split(",")


class Handlers(dict):
    def __missing__(self, command):  # revoke and the like: nothing to do
        return lambda state, **kwargs: None


handlers = Handlers(
    ping=lambda state, **kwargs: {"ok": "pong"},
    active_queues=lambda state, **kwargs: [{"name": q, "exchange": {"name": q}, "routing_key": q} for q in queues],
)
app = Celery("fuzz-stand-in", broker=url)
with app.connection_for_write() as connection:
    node = app.control.mailbox.Node(hostname, handlers=handlers, state=None)
    node.channel = connection.channel()
    node.listen(callback=node.handle_message)
    print("ready", flush=True)
    while True:
        try:
            connection.drain_events(timeout=1)
        except socket.timeout:
            pass
"""


class FuzzServer:
    """The web server under fuzz, the Redis it publishes to, and the stand-in worker."""

    def __init__(self, workdir: Path) -> None:
        self.redis = RedisServer(workdir / "redis").start()
        self.stand_in_log = workdir / "stand-in.log"
        self.stand_in = spawn(
            [str(VENV_BIN / "python"), "-c", FAKE_WORKER, self.redis.url, "stand-in@fuzz", ",".join(QUEUES)],
            self.stand_in_log,
            cwd=ROOT,
        )
        wait_for(lambda: "ready" in self.stand_in_log.read_text(), 30, what="the stand-in worker")
        env = app_env(
            workdir / "data",
            self.redis.url,
            resolvers=f"127.0.0.1:{free_port()}",
            ct_url=f"http://127.0.0.1:{free_port()}/?q={{domain}}&output=json",
            # Generous probe timeouts: a slow answer from Redis or the stand-in must not flip the web
            # server into fallback mode (where it would run jobs itself) on a busy machine.
            broker_probe_timeout=5,
            worker_ping_timeout=5,
        )
        self.web = WebServer(env).start()
        self.url = self.web.url
        self.client = httpx.Client(base_url=self.url, headers=AUTH, timeout=30)
        assert self.client.get("/openapi.json").json() == OPENAPI, "the served schema is not the one fuzzed"
        wait_for(self.jobs_cannot_run, 30, what="the web server to see the stand-in worker (celery mode)")

    def jobs_cannot_run(self) -> bool:
        """True when every queue is 'served' by the stand-in only: jobs are published, never run."""
        if self.stand_in.poll() is not None:
            return False
        queues = self.client.get("/api/v1/jobs/queues").json()
        return queues["mode"] == "celery" and all(queues["queues"][q]["workers"] == ["stand-in@fuzz"] for q in QUEUES)

    def guard(self) -> None:
        """Called before every fuzzed request: refuse to go on if a job could run."""
        assert self.stand_in.poll() is None, "the stand-in worker died: jobs would run in the web process"
        assert self.client.get("/healthz").json()["mode"] == "celery", "the web server left celery mode"

    def jobs_that_ran(self) -> list[dict]:
        """Jobs that started anywhere, or were handed to anything but Celery: there must be none."""
        found = []
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            jobs = self.client.get("/api/v1/jobs", params={"status": status, "limit": 1000}).json()["jobs"]
            found += [j for j in jobs if status not in ("queued", "cancelled") or j["backend"] != "celery"]
        return found

    def stop(self) -> None:
        self.client.close()
        self.web.stop()
        stop(self.stand_in)
        self.redis.stop()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory):
    server = FuzzServer(tmp_path_factory.mktemp("api-fuzz"))
    try:
        yield server
        assert server.jobs_that_ran() == [], "a job ran during the fuzz"
    finally:
        server.stop()


def call(fuzz_server: FuzzServer, method: str, path: str, **kwargs) -> httpx.Response:
    """One fuzzed request outside schemathesis; a 5xx fails the test with the request that caused it."""
    fuzz_server.guard()
    sent = kwargs.pop("json", None)
    if sent is not None:  # json.dumps escapes lone surrogates ("\ud800"), as a browser or curl may send them
        kwargs |= {"content": json.dumps(sent), "headers": {"Content-Type": "application/json"}}
    response = fuzz_server.client.request(method, path, **kwargs)
    assert response.status_code < 500, f"{method} {path} {json.dumps(sent)[:2000]} -> {response.text[:500]}"
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    return response


# ------------------------------------------------------------------------------------------- every operation


def openapi_document() -> dict:
    """The schema the web server serves, made by the same code in a short-lived process: the operations
    must be known at collection time, before any server runs (the fixture checks the served one is equal)."""
    code = "import json; from app.main import app; print(json.dumps(app.openapi()))"
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(Path(tmp), UNREACHABLE_REDIS)
        done = subprocess.run(
            [str(VENV_BIN / "python"), "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=60
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


OPENAPI = openapi_document()
SCHEMA = (
    schemathesis.openapi.from_dict(OPENAPI)
    .include(path_regex=r"^/api/")
    .exclude(path=SEND_TEST)  # sends at once: fuzzed below with loopback channels only
)
# One pytest test per operation, built the way schemathesis's pytest plugin builds them (its fuzzing phase,
# valid and invalid input, plus its "coverage" phase of boundary values). Not schema.parametrize() itself:
# with this pytest its items all get the same node id, and pytest-xdist then runs only the first one.
OPERATIONS = {operation.label: operation for operation in (result.ok() for result in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_api_operation(fuzz_server, label):
    def request(case):
        fuzz_server.guard()
        response = case.call(base_url=fuzz_server.url, headers=AUTH, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    fuzz = build_operation_test(
        config=SCHEMA.config,
        operation=OPERATIONS[label],
        test_func=request,
        given_kwargs={},
        feedback=FeedbackSources(),
        explicit_settings=FUZZ,
    )
    fuzz()


# ------------------------------------------------------------------------------------------- free-form bodies


# Regression examples for what the fuzzing found: lone surrogates ("\ud800" is valid JSON, but no database
# column takes it) and digits that int() refuses ("²").
@BODIES
@given(target_bodies)
@example(body={"name": "a\ud800", "domains": ["acme.example"]})
@example(body={"name": "acme", "urls": ["https://acme.example/\ud800"]})
def test_target_bodies(fuzz_server, body):
    created = call(fuzz_server, "POST", "/api/v1/targets", json=body)
    if created.status_code == 201:
        stored = created.json()
        assert call(fuzz_server, "GET", f"/api/v1/targets/{stored['target_id']}").json() == stored


@BODIES
@given(st.integers(1, 30) | st.integers(), target_bodies)
def test_target_changes(fuzz_server, target_id, body):
    call(fuzz_server, "PATCH", f"/api/v1/targets/{target_id}", json=body)


@BODIES
@given(
    st.one_of(numberish, text_with(".", "/", "://", "acme"), domains, json_values),
    st.one_of(st.lists(st.sampled_from(["subdomains", "dns", "ports", "http", "js", "x"])), json_values),
    st.one_of(scan_options, json_values),
)
@example(target="acme\ud800.example", modules=None, options={})
@example(target="²", modules=None, options={})
def test_scan_requests(fuzz_server, target, modules, options):
    call(fuzz_server, "POST", "/api/v1/scans", json={"target": target, "modules": modules, "options": options})


@BODIES
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from(KINDS) | json_values,
            "url": text_with("https://", "http://", "smtp://", "hooks.slack.com/services/", "?chat_id=1", "@"),
            "events": st.lists(st.sampled_from((*EVENT_TYPES, "*", "x"))) | json_values,
            "min_severity": st.sampled_from(SEVERITIES) | json_values,
            "secret": json_values,
            "enabled": json_values,
        },
    )
)
@example(body={"kind": "webhook", "url": "https://hooks.example/?a=\ud800"})
@example(body={"kind": "webhook", "url": "https://hooks.example/", "secret": "\ud800" * 9})
def test_channel_bodies(fuzz_server, body):
    call(fuzz_server, "POST", "/api/v1/notifications", json=body)


@BODIES
@given(
    st.integers(1, 30) | st.integers(),
    st.fixed_dictionaries(
        {},
        optional={
            "schedule": schedule_values,
            "next_run_at": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat) | numberish | json_values,
        },
    ),
)
def test_reschedule_bodies(fuzz_server, target_id, body):
    call(fuzz_server, "POST", f"/api/v1/jobs/scheduled/{target_id}/reschedule", json=body)


@BODIES
@given(
    st.integers(1, 30),
    st.fixed_dictionaries(
        {},
        optional={
            "subdomains": st.lists(st.one_of(domains, text_with(".", "-"), json_values), max_size=5) | json_values,
            "hosts": st.lists(st.one_of(text_with(".", "/", ":"), numberish, json_values), max_size=5) | json_values,
        },
    ),
)
def test_import_bodies(fuzz_server, target_id, body):
    call(fuzz_server, "POST", f"/api/v1/targets/{target_id}/import", json=body)


# ------------------------------------------------------------------------------------------- send test


@pytest.fixture(scope="module")
def loopback_channels(fuzz_server: FuzzServer):
    """Only channels that point at 127.0.0.1: every other channel is deleted first."""
    receiver = Receiver("127.0.0.1").start()
    while channels := fuzz_server.client.get("/api/v1/notifications").json()["channels"]:  # pages of 500
        for channel in channels:
            assert fuzz_server.client.delete(f"/api/v1/notifications/{channel['id']}").status_code == 204
    base = f"http://127.0.0.1:{receiver.port}"
    dead_smtp = f"smtp://127.0.0.1:{free_port()}?from=a@example.com&to=b@example.com"
    urls = {
        "webhook": f"{base}/hook",
        "slack": f"{base}/services/T0/B0/x",
        "discord": f"{base}/api/webhooks/1/x",
        "telegram": f"{base}/bot1:x/sendMessage?chat_id=1",
        "email": dead_smtp,
    }
    ids = []
    for kind, url in urls.items():
        created = fuzz_server.client.post("/api/v1/notifications", json={"kind": kind, "url": url})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    yield receiver, ids
    receiver.stop()


@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(channel=st.integers(0, 6) | st.integers())
def test_send_test_reaches_only_loopback_channels(fuzz_server, loopback_channels, channel):
    receiver, ids = loopback_channels
    channels = fuzz_server.client.get("/api/v1/notifications").json()["channels"]
    assert sorted(c["id"] for c in channels) == sorted(ids), "a channel that is not on loopback appeared"
    call(fuzz_server, "POST", SEND_TEST.format(channel_id=channel))


def test_send_test_delivered_to_the_loopback_receiver(fuzz_server, loopback_channels):
    receiver, ids = loopback_channels
    for channel_id in ids[:4]:  # the chat and webhook channels (e-mail goes to a closed port)
        call(fuzz_server, "POST", SEND_TEST.format(channel_id=channel_id))
    receiver.wait(4, timeout=30)
