"""Certificate transparency against a fake crt.sh on 127.0.0.1."""

import asyncio
import json

import pytest

from app.scanners import ct
from tests.support.weblab import LabServer


@pytest.fixture
def crt():
    server = LabServer("127.0.0.1").start()
    yield server
    server.stop()


def _search(server: LabServer, path: str, **kw) -> list[str]:
    return asyncio.run(ct.subdomains("lab.test", url_template=f"{server.url}{path}?q=%25.{{domain}}", **kw))


def test_names_under_the_domain_from_name_value_and_common_name(crt):
    entries = [
        {"name_value": "www.lab.test\n*.api.lab.test\nLAB.TEST", "common_name": "www.lab.test"},
        {"name_value": "mail.lab.test", "common_name": "evil.test"},
        {"name_value": "notlab.test\nx.lab.test.evil.test\nbad..lab.test", "common_name": None},
        "garbage",
    ]
    crt.add("/ct", json.dumps(entries), content_type="application/json")
    assert _search(crt, "/ct") == ["api.lab.test", "lab.test", "mail.lab.test", "www.lab.test"]
    assert crt.requests == ["/ct?q=%25.lab.test"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("not json", 200, "not JSON"),
        ('{"a": 1}', 200, "not a JSON list"),
        ("busy", 429, "HTTP 429"),
        ("x" * 5000, 200, "refused"),
    ],
)
def test_a_failing_source_is_a_clear_error(crt, body, status, message):
    crt.add("/ct", body, status=status, content_type="application/json")
    with pytest.raises(ct.CTError, match=message):
        _search(crt, "/ct", max_bytes=4096)


def test_an_unreachable_source_is_a_clear_error():
    with pytest.raises(ct.CTError, match="unreachable"):
        asyncio.run(ct.subdomains("lab.test", url_template="http://127.0.0.1:1/?q={domain}", timeout=2))
