"""Property-based tests (hypothesis) of every parser that reads what a user typed.

Targets and scope rules (domains, IPs, CIDRs, include/exclude), port specs, resolvers, URLs (targets,
JavaScript scans, CT_URL, notification channels), schedules, scan options, target bodies and secret
rule files. Each one is fed arbitrary text — unicode, control characters, lone surrogates, digits
that are not ASCII, numbers far beyond any range, empty and blank strings, and fragments of its own
syntax glued together — and must either return a valid normalised value or raise its documented
error with a message a person can act on. Any other exception would be a 500 in the API or a
traceback in the CLI. What is accepted round-trips (normalising twice is normalising once; a
formatted port list parses back to itself), and generated valid input is accepted as expected.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.errors import (
    ChannelError,
    InvalidArguments,
    PortSpecError,
    RuleError,
    ScanError,
    ScheduleError,
    ScopeError,
    TargetError,
)
from app.monitor.notify import channels
from app.net.names import normalise_domain
from app.net.urls import InvalidURL, check_url
from app.recon import schedule as schedule_spec
from app.recon import stages, targets
from app.recon.options import check_options
from app.recon.scope import Scope, normalise_network, normalise_pattern
from app.scanners import portspec
from app.scanners.dns import ResolverError, parse_resolver
from app.secrets import rules
from tests.conftest import UNREACHABLE_REDIS

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REFUSED = object()  # what `outcome` returns for input the parser refused properly

# Messages that come from Python itself, not from us: a user could not act on them.
NOT_FOR_PEOPLE = (
    "invalid literal for int()",
    "Exceeds the limit",
    "object has no attribute",
    "is not subscriptable",
    "unhashable type",
    "NoneType",
    "Traceback",
)


@pytest.fixture(scope="module", autouse=True)
def parser_settings(tmp_path_factory: pytest.TempPathFactory):
    """Default limits (SCOPE_MAX_CIDR_PREFIX=16, MIN_SCHEDULE_SECONDS=300) and a throwaway data dir."""
    from app.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        for key in ("DATABASE_URL", "SCOPE_MAX_CIDR_PREFIX", "MIN_SCHEDULE_SECONDS", "RESOLVERS", "CT_URL"):
            patch.delenv(key, raising=False)
        patch.setenv("DATA_DIR", str(tmp_path_factory.mktemp("parsers")))
        patch.setenv("REDIS_URL", UNREACHABLE_REDIS)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


def outcome(parse, value: Any, errors: type[Exception] | tuple[type[Exception], ...], storable: bool = True) -> Any:
    """parse(value), or REFUSED when it raised one of `errors` with a message a person can read.
    Any other exception fails the test (hypothesis then shrinks the input to a small example).
    What is accepted must be storable: all its text encodes as UTF-8 (no lone surrogate slipped through)."""
    try:
        result = parse(value)
    except errors as exc:
        message = str(exc)
        assert message.strip(), f"{type(exc).__name__} without a message for {value!r}"
        assert not any(noise in message for noise in NOT_FOR_PEOPLE), message
        return REFUSED
    if storable:
        json.dumps(result, default=repr, ensure_ascii=False).encode("utf-8")
    return result


# ----------------------------------------------------------------------------------------------- strategies

# Every code point, including control characters and lone surrogates (JSON "\ud800" arrives as one).
ANY_CHAR = st.characters(exclude_categories=())
# Characters that trip parsers: non-ASCII digits that str.isdigit() accepts but int() may not,
# compatibility forms NFKC folds, invisible and direction marks, a surrogate, NUL and DEL.
AWKWARD = ("", " ", "\t", "\n", "\r\n", "\x00", "\x7f", "\u200b", "\u202e", "\ufeff", "\ud800")
AWKWARD += ("²", "٣", "①", "Ⅻ", "ﬁ", "０", "−", "ı", "K", "ß", "é", "\u0301", "。", "．")


def digits(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.integers(min_size, max_size).map(lambda n: "9" * n)


def text_with(*tokens: str, huge: int = 5000) -> st.SearchStrategy[str]:
    """Arbitrary text mixed with pieces of a parser's syntax and numbers up to `huge` digits."""
    piece = st.one_of(
        st.text(ANY_CHAR, max_size=10),
        st.sampled_from(AWKWARD),
        st.sampled_from(tokens or AWKWARD),
        st.integers(-(10**6), 10**20).map(str),
        digits(20, huge),
    )
    return st.lists(piece, max_size=8).map("".join)


# What may stand where a number is expected: str.isdigit() is true for "²" and "①", but int() refuses them.
numberish = st.one_of(
    st.sampled_from(["²", "٣", "①", "０", "Ⅻ", "-1", "0", "+1", " 1", "1_000", "0x10", "1e3", "", " "]),
    st.integers().map(str),
    digits(4200, 5000),
)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 5),
    st.floats(),
    st.text(ANY_CHAR, max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)

LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z")
TLD = st.from_regex(r"\A[a-z]{2,12}\Z")
domains = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, min_size=1, max_size=4), TLD)
# (Nothing that ends in an empty "?" or ";": check_url's urldefrag drops those with a fragment, harmlessly.)
url_paths = st.from_regex(r"\A(/[A-Za-z0-9._~!$&'()*+,=:@-]{0,12}){0,4}(\?[A-Za-z0-9=&]{1,20})?\Z")

DOMAIN_TOKENS = (".", "..", "-", "--", "xn--", "*.", "_", "a", "Z", "example", "com", "0", "1.2.3.4", "/", ":", "@")
NETWORK_TOKENS = (".", "/", ":", "::", "%", "%eth0", "0", "1", "10", "255", "256", "16", "32", "33", "112", "128")
NETWORK_TOKENS += ("1.2.3.4", "10.0.0.0/8", "::1", "2001:db8::", "::ffff:1.2.3.4", "0x7f", "-")
URL_TOKENS = ("http://", "https://", "HTTP://", "ftp://", "javascript:", "//", "[", "]", ":", "@", "/", "?", "#")
URL_TOKENS += ("%", "%zz", "%00", "localhost", "127.0.0.1", "[::1]", "example.com", ":0", ":80", ":65536", "user:pw@")
URL_TOKENS += ("{domain}", "xn--", ".", "\\")


# ----------------------------------------------------------------------------------------------- domains


def is_stored_domain(name: str) -> bool:
    labels = name.split(".")
    return (
        name.isascii()
        and name == name.lower()
        and len(name) <= 253
        and len(labels) >= 2
        and all(re.fullmatch(r"(?!-)[a-z0-9-]{1,63}(?<!-)", label) for label in labels)
        and not labels[-1].isdigit()
    )


@FAST
@given(text_with(*DOMAIN_TOKENS))
def test_domain_parser_returns_a_stored_name_or_a_scope_error(text):
    name = outcome(normalise_domain, text, ScopeError)
    if name is REFUSED:
        return
    assert is_stored_domain(name), name
    assert normalise_domain(name) == name


@FAST
@given(domains, st.sampled_from(["", ".", " ", "\t"]))
def test_generated_domains_are_accepted_in_any_case_with_a_trailing_dot(name, suffix):
    assume(len(name) <= 253 and not name.split(".")[-1].isdigit())
    assert normalise_domain(f" {name.upper()}{suffix}") == name


@FAST
@given(st.lists(st.text(st.characters(categories=["Ll", "Lo"]), min_size=1, max_size=10), min_size=1, max_size=3))
def test_unicode_domains_are_stored_as_punycode(labels):
    name = outcome(normalise_domain, ".".join([*labels, "example"]), ScopeError)
    if name is not REFUSED:
        assert is_stored_domain(name) and name.endswith(".example")
        assert normalise_domain(name) == name


# ----------------------------------------------------------------------------------------------- networks


@FAST
@given(text_with(*NETWORK_TOKENS))
def test_network_parser_returns_a_cidr_within_the_limit_or_a_scope_error(text):
    network = outcome(lambda v: normalise_network(v, max_prefix=16), text, ScopeError)
    if network is REFUSED:
        return
    parsed = ipaddress.ip_network(network)
    assert str(parsed) == network and parsed.num_addresses <= 2**16
    assert normalise_network(network, max_prefix=16) == network


@FAST
@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_generated_ipv4_networks_are_accepted_up_to_the_limit(address, prefix):
    expected = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    if prefix >= 16:
        assert normalise_network(f"{address}/{prefix}", max_prefix=16) == str(expected)
    else:
        with pytest.raises(ScopeError, match="SCOPE_MAX_CIDR_PREFIX"):
            normalise_network(f"{address}/{prefix}", max_prefix=16)
    assert normalise_network(str(address), max_prefix=16) == f"{address}/32"


@FAST
@given(st.ip_addresses(v=6), st.integers(0, 128))
def test_generated_ipv6_networks_are_accepted_up_to_the_limit(address, prefix):
    expected = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    if prefix >= 112:
        assert normalise_network(f"{address}/{prefix}", max_prefix=16) == str(expected)
    else:
        with pytest.raises(ScopeError, match="SCOPE_MAX_CIDR_PREFIX"):
            normalise_network(f"{address}/{prefix}", max_prefix=16)


@FAST
@given(text_with(*DOMAIN_TOKENS, *NETWORK_TOKENS))
def test_scope_rules_are_normalised_once_or_refused(text):
    rule = outcome(normalise_pattern, text, ScopeError)
    if rule is REFUSED:
        return
    assert normalise_pattern(rule) == rule
    if "/" in rule:
        assert str(ipaddress.ip_network(rule)) == rule
    else:
        assert is_stored_domain(rule.removeprefix("*."))


# ----------------------------------------------------------------------------------------------- targets and scope


@FAST
@given(text_with(*DOMAIN_TOKENS, *NETWORK_TOKENS, *URL_TOKENS))
def test_quick_targets_parse_to_a_scope_or_a_scope_error(text):
    scope = outcome(Scope.parse_target, text, ScopeError)
    if scope is REFUSED:
        return
    assert scope.domains or scope.networks or scope.urls
    again = Scope.build(scope.domains, scope.networks, scope.urls, {"include": [], "exclude": []})
    assert again == scope


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "domains": st.one_of(json_values, st.lists(text_with(*DOMAIN_TOKENS), max_size=3)),
            "cidrs": st.one_of(json_values, st.lists(text_with(*NETWORK_TOKENS), max_size=3)),
            "urls": st.one_of(json_values, st.lists(text_with(*URL_TOKENS), max_size=3)),
            "scope": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {}, optional={"include": st.lists(text_with(*DOMAIN_TOKENS)), "exclude": json_values}
                ),
            ),
        },
    )
)
def test_scope_build_takes_any_json_and_round_trips(spec):
    scope = outcome(
        lambda s: Scope.build(s.get("domains") or [], s.get("cidrs") or [], s.get("urls") or [], s.get("scope")),
        spec,
        ScopeError,
    )
    if scope is REFUSED:
        return
    stored = scope.as_dict()
    assert Scope.build(stored["domains"], stored["cidrs"], stored["urls"], stored["scope"]) == scope


@FAST
@given(domains, LABEL, LABEL, st.ip_addresses(v=4), st.integers(0, 255))
def test_an_exclude_rule_always_wins(domain, excluded_label, other_label, address, host):
    assume(excluded_label != other_label and len(domain) < 200)
    network = ipaddress.ip_network(f"{address}/24", strict=False)
    excluded_ip = str(network.network_address + host)
    scope = Scope.build(
        [domain], [str(network)], [], {"exclude": [f"{excluded_label}.{domain}", excluded_ip], "include": []}
    )
    assert not scope.name_in_scope(f"{excluded_label}.{domain}")
    assert not scope.name_in_scope(f"deep.{excluded_label}.{domain}")
    assert scope.name_in_scope(f"{other_label}.{domain}")
    assert not scope.address_in_scope(excluded_ip)
    assert not scope.address_in_scope(str(network.network_address + (host + 1) % 256), [f"{excluded_label}.{domain}"])
    assert excluded_ip not in scope.addresses()


# ----------------------------------------------------------------------------------------------- URLs


def assert_scannable(url: str) -> None:
    parts = urlsplit(url)
    assert parts.scheme.lower() in ("http", "https") and parts.hostname and not parts.fragment
    assert not parts.username and not parts.password and len(url) <= 2048


@FAST
@given(text_with(*URL_TOKENS))
def test_url_check_returns_a_scannable_url_or_invalid_url(text):
    url = outcome(check_url, text, InvalidURL)
    if url is REFUSED:
        return
    assert_scannable(url)
    assert check_url(url) == url


@FAST
@given(st.sampled_from(["http", "https"]), domains, st.none() | st.integers(1, 65535), url_paths)
def test_generated_urls_are_accepted_unchanged(scheme, domain, port, path):
    url = f"{scheme}://{domain}{f':{port}' if port else ''}{path}"
    assert check_url(url) == url
    assert check_url(f"  {url}#fragment ") == url


@FAST
@given(text_with(*URL_TOKENS))
def test_javascript_scan_urls_are_checked_like_target_urls(text):
    from app import tasks  # noqa: F401  (registers the jobs)
    from app.jobs import registry

    spec = registry.get("secrets_scan_url")
    clean = outcome(spec.validate, {"url": text}, InvalidArguments)
    if clean is REFUSED:
        return
    assert clean == {"url": check_url(text)}


@FAST
@given(text_with(*URL_TOKENS))
def test_ct_url_setting_is_an_http_template_or_a_settings_error(text):
    from pydantic import ValidationError

    from app.settings import Settings

    # (storable=False: the setting takes a lone surrogate; app/settings.py is another change's file.)
    made = outcome(lambda v: Settings(ct_url=v, _env_file=None), text, ValidationError, storable=False)
    if made is REFUSED:
        return
    assert made.ct_url == text and "{domain}" in text
    assert urlsplit(text).scheme in ("http", "https")


# ----------------------------------------------------------------------------------------------- notification channels

CHAT_URLS = st.sampled_from(
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://discord.com/api/webhooks/123/abc",
        "https://api.telegram.org/bot123:abc/sendMessage?chat_id=-100",
        "smtp://user:pw@mail.example.com:587?from=a@example.com&to=b@example.com&starttls=1",
        "smtps://mail.example.com?from=a@example.com&to=b@example.com,c@example.com",
        "http://127.0.0.1:9/hook?token=x",
    ]
)


@FAST
@given(st.sampled_from(channels.KINDS), st.one_of(text_with(*URL_TOKENS, "smtp://", "?from=a@b.c&to=d@e.f"), CHAT_URLS))
def test_channel_urls_are_validated_per_kind_or_refused(kind, url):
    body = outcome(channels.validate, {"kind": kind, "url": url}, ChannelError)
    if body is REFUSED:
        return
    assert body["url"] == url.strip()
    assert channels.validate(body) == body
    assert isinstance(channels.redact_url(kind, body["url"]), str)


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.one_of(st.sampled_from(channels.KINDS), json_values),
            "url": st.one_of(CHAT_URLS, json_values),
            "events": st.one_of(st.lists(st.sampled_from(channels.EVENT_TYPES + ("*", "nope"))), json_values),
            "min_severity": st.one_of(st.sampled_from(channels.SEVERITIES), json_values),
            "secret": st.one_of(st.text(min_size=8, max_size=20), json_values),
            "enabled": json_values,
        },
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)
def test_channel_bodies_take_any_json(body, extra):
    checked = outcome(channels.validate, body | extra, ChannelError)
    if checked is not REFUSED:
        assert channels.validate(checked) == checked


@FAST
@given(st.sampled_from(channels.KINDS), text_with(*URL_TOKENS).map(lambda u: u.encode("utf-8", "replace").decode()))
def test_redacting_any_storable_url_never_fails(kind, url):
    # Whatever the database holds (valid text, if not a valid URL): listings must still show it.
    assert isinstance(channels.redact_url(kind, url), str)


# ----------------------------------------------------------------------------------------------- resolvers


@FAST
@given(text_with(":", "[", "]", ".", "53", "0", "65536", "::1", "127.0.0.1", "192.0.2.53", "fe80::1%eth0"))
def test_resolver_specs_are_parsed_or_refused(text):
    parsed = outcome(parse_resolver, text, ResolverError)
    if parsed is REFUSED:
        return
    host, port = parsed
    assert 1 <= port <= 65535
    address = ipaddress.ip_address(host)
    formatted = f"[{host}]:{port}" if address.version == 6 else f"{host}:{port}"
    assert parse_resolver(formatted) == parsed


@FAST
@given(st.ip_addresses(), numberish | text_with("0", "53", "65535", "65536", ":"))
def test_resolver_ports_are_port_numbers_or_refused(address, port_text):
    spec = f"[{address}]:{port_text}" if address.version == 6 else f"{address}:{port_text}"
    parsed = outcome(parse_resolver, spec, ResolverError)
    if parsed is not REFUSED:
        assert parsed == (str(address), int(port_text)) and 1 <= parsed[1] <= 65535


@FAST
@given(st.ip_addresses(), st.integers(1, 65535))
def test_generated_resolvers_are_accepted(address, port):
    spec = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    assert parse_resolver(spec) == (str(address), port)
    assert parse_resolver(str(address)) == (str(address), 53)


# ----------------------------------------------------------------------------------------------- port specs

PORT_TOKENS = (",", "-", "--", "top", "TOP", "top ", "0", "1", "80", "443", "65535", "65536", "1000", "1001", " ")


def format_ports(numbers: list[int]) -> str:
    """The shortest spec for a port list: consecutive ports as START-END ranges."""
    parts: list[str] = []
    for port in numbers:
        if parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == port - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{port}"
        elif parts and "-" not in parts[-1] and int(parts[-1]) == port - 1:
            parts[-1] = f"{parts[-1]}-{port}"
        else:
            parts.append(str(port))
    return ",".join(parts)


@FAST
@given(text_with(*PORT_TOKENS, huge=500))  # (longer runs of digits: see the test below)
def test_port_specs_give_sorted_unique_ports_or_a_port_spec_error(text):
    numbers = outcome(portspec.parse_ports, text, PortSpecError)
    if numbers is REFUSED:
        return
    assert numbers and numbers == sorted(set(numbers))
    assert all(1 <= n <= portspec.MAX_PORT for n in numbers)
    assert portspec.parse_ports(format_ports(numbers)) == numbers


@FAST
@given(st.lists(st.tuples(st.integers(1, 65535), st.integers(0, 300)), min_size=1, max_size=6), st.booleans())
def test_generated_port_lists_and_ranges_are_accepted(ranges, spaced):
    bounds = [(start, min(start + length, 65535)) for start, length in ranges]
    spec = (", " if spaced else ",").join(f"{a}-{b}" if a != b else str(a) for a, b in bounds)
    expected = sorted({port for a, b in bounds for port in range(a, b + 1)})
    assert portspec.parse_ports(spec) == expected
    assert portspec.parse_ports(format_ports(expected)) == expected


@FAST
@given(st.integers(-5, 1100) | st.integers())
def test_top_ports_are_the_most_common_ones_or_a_value_error(count):
    available = len(portspec.top_ports(1000))
    if 1 <= count <= available:
        top = portspec.top_ports(count)
        assert len(top) == len(set(top)) == count
        assert portspec.parse_ports(f"top{count}") == sorted(top)
    else:
        with pytest.raises(ValueError, match="top ports go from 1"):
            portspec.top_ports(count)


@pytest.mark.parametrize("spec", ["9" * 5000, "top" + "9" * 5000, "1-" + "9" * 5000])
def test_a_port_number_with_thousands_of_digits_is_a_port_spec_error(spec):
    with pytest.raises(PortSpecError):
        portspec.parse_ports(spec)


# ----------------------------------------------------------------------------------------------- schedules

CRON_FIELD = st.sampled_from(["*", "*/5", "*/0", "0", "1", "7", "12", "23", "29", "30", "31", "59", "60", "2-1"])
CRON_FIELD |= st.sampled_from(["L", "W", "1W", "?", "R", "H", "5#2", "5#6", "MON", "jan", "1,15", "*/" + "9" * 25])
cron_texts = st.lists(CRON_FIELD, min_size=3, max_size=7).map(" ".join) | text_with("*", "/", " ", ",", "-", "L", "#")
schedule_values = st.one_of(
    json_values,
    st.fixed_dictionaries({"every_seconds": st.one_of(st.integers(), st.integers(min_value=10**8), json_scalars)}),
    st.fixed_dictionaries({"cron": st.one_of(cron_texts, json_scalars)}),
)


@FAST
@given(schedule_values, st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_schedules_are_refused_or_can_be_run(schedule, after):
    clean = outcome(schedule_spec.check, schedule, ScheduleError)
    if clean is REFUSED or clean is None:
        return
    assert schedule_spec.check(clean) == clean
    when = schedule_spec.next_run(clean, after.replace(tzinfo=UTC))
    assert when > after.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------- scan options and targets


def splits(url: str) -> bool:
    try:
        urlsplit(url)
        return True
    except ValueError:
        return False


scan_options = st.fixed_dictionaries(
    {},
    optional={
        "modules": st.one_of(
            st.lists(st.sampled_from(stages.modules() + ("nope",))), text_with(",", "dns"), json_values
        ),
        "resolvers": st.one_of(st.lists(text_with(":", ".", "53", "127.0.0.1", "[::1]")), json_values),
        # (URLs that urlsplit() refuses, and longer runs of digits in ports: see the tests above.)
        "ct_url": st.one_of(text_with(*URL_TOKENS).filter(splits), json_values),
        "ports": st.one_of(text_with(*PORT_TOKENS, huge=500), json_values),
        "http_ports": st.one_of(st.lists(st.integers(-1, 70000)), json_values),
        "incremental": json_values,
    },
)


@FAST
@given(scan_options, st.dictionaries(st.text(max_size=8), json_values, max_size=1))
def test_scan_options_are_cleaned_or_refused(options, extra):
    clean = outcome(check_options, options | extra, ScanError)
    if clean is not REFUSED:
        assert check_options(clean) == clean


@pytest.mark.parametrize("ct_url", ["http://[x/?q={domain}", "https://a\uff03b/?q={domain}"])
def test_a_ct_url_that_urlsplit_refuses_is_a_scan_error(ct_url):
    with pytest.raises(ScanError):
        check_options({"ct_url": ct_url})


target_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(text_with("acme", "-", "1"), json_values),
        "domains": st.one_of(st.lists(domains, max_size=2), st.lists(text_with(*DOMAIN_TOKENS), max_size=2)),
        "cidrs": st.one_of(st.lists(text_with(*NETWORK_TOKENS), max_size=2), json_values),
        "urls": st.one_of(st.lists(text_with(*URL_TOKENS), max_size=2), json_values),
        "scope": st.one_of(st.fixed_dictionaries({"exclude": st.lists(text_with(*DOMAIN_TOKENS))}), json_values),
        "scan_options": st.one_of(scan_options, json_values),
        "schedule": schedule_values,
    },
)


@FAST
@given(target_bodies)
def test_target_bodies_are_validated_whole_or_refused(body):
    # ScanError comes from the scan_options; the API answers both with 422.
    stored = outcome(targets.validate, body, (TargetError, ScanError))
    if stored is REFUSED:
        return
    assert targets.validate(stored) == stored
    if stored["schedule"] is not None:
        assert schedule_spec.next_run(stored["schedule"], datetime(2026, 1, 1, tzinfo=UTC))


# ----------------------------------------------------------------------------------------------- secret rule files


def toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


NO_SURROGATES = st.characters(exclude_categories=["Cs"])
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(NO_SURROGATES, max_size=15),
    st.dates(),
    st.times(),
    st.datetimes(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(NO_SURROGATES, max_size=8), inner, max_size=3),
    max_leaves=6,
)
PATTERN_TOKENS = ("(?P<secret>", ")", "(", "[", "]", "{", "}", "{99999999999}", "\\", "\\b", "(?i)", "(?<=a)", "*", "+")
PATTERN_TOKENS += ("?", "|", "[A-Z0-9]{16}", "(?P<other>", "\\1", "^", "$", ".", "(?#", "[^")
pattern_texts = st.lists(st.sampled_from(PATTERN_TOKENS) | st.text(NO_SURROGATES, max_size=4), max_size=8).map("".join)
pattern_texts |= st.integers(1, 3000).map(lambda n: "(" * n + "(?P<secret>a)" + ")" * n)  # nested deep
# A rule that loads, then up to three of its fields replaced by anything TOML can say (or a plausible value).
VALID_RULE = {
    "id": "fuzz-rule",
    "description": "a fuzzed rule",
    "pattern": r"\b(?P<secret>fz_[A-Za-z0-9]{16})\b",
    "keywords": ["fz_"],
}
RULE_FIELDS = {
    "id": st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,20}\Z"),
    "description": st.text(NO_SURROGATES, max_size=20),
    "pattern": pattern_texts,
    "keywords": st.lists(st.text(NO_SURROGATES, max_size=6), max_size=3),
    "severity": st.sampled_from(rules.SEVERITIES),
    "confidence": st.sampled_from(rules.CONFIDENCES),
    "entropy": st.floats(-1, 9),
    "max_len": st.integers(0, 70000),
    "embedded_ok": st.booleans(),
    "allowlist": st.fixed_dictionaries(
        {}, optional={"regexes": st.lists(pattern_texts, max_size=2), "stopwords": st.lists(st.text(max_size=5))}
    ),
    "prefilter": pattern_texts,
    "generate": st.text(NO_SURROGATES, max_size=10),
    "examples": st.fixed_dictionaries({}, optional={"true": st.lists(st.text(max_size=9)), "false": toml_values}),
}
rule_fields = st.builds(
    lambda changes: VALID_RULE | dict(changes),
    st.lists(
        st.sampled_from(sorted(RULE_FIELDS)).flatmap(
            lambda key: st.tuples(st.just(key), RULE_FIELDS[key] | toml_values)
        ),
        max_size=3,
    ),
)


# re.compile warns about "[[" and friends in fuzzed patterns (future syntax): not our concern here.
quiet_regex_warnings = pytest.mark.filterwarnings("ignore:Possible (nested set|set [a-z]+):FutureWarning")


def load_rule_text(text: str | bytes) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        return outcome(lambda p: rules.load_rules([p], builtin=False), path, RuleError)


@quiet_regex_warnings
@SLOW
@given(st.one_of(st.binary(max_size=200), text_with("[[rules]]", "\n", "=", '"', "id", "pattern", "[", "]", "{")))
def test_any_rule_file_loads_or_gives_a_rule_error(content):
    ruleset = load_rule_text(content)
    if ruleset is not REFUSED:
        assert len(ruleset) >= 1


@quiet_regex_warnings
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rule_fields, min_size=1, max_size=2))
def test_rule_tables_with_any_values_load_or_give_a_rule_error(tables):
    text = "".join(
        "[[rules]]\n" + "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in table.items())
        for table in tables
    )
    ruleset = load_rule_text(text)
    if ruleset is REFUSED:
        return
    for rule in ruleset.rules:
        assert rule.severity in rules.SEVERITIES and rule.confidence in rules.CONFIDENCES
        assert 8 <= rule.max_len <= 65536 and rule.keywords
        assert "secret" in rule.regex.groupindex


@SLOW
@given(
    st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,20}\Z"),
    st.from_regex(r"\A[A-Za-z][A-Za-z_]{2,8}\Z"),
    st.integers(8, 40),
    st.sampled_from(rules.SEVERITIES),
    st.randoms(use_true_random=False),
)
def test_generated_rules_load_compile_and_find_their_secrets(rule_id, prefix, length, severity, rng):
    pattern = rf"\b(?P<secret>{prefix}[A-Za-z0-9]{{{length}}})\b"
    text = (
        f'[[rules]]\nid = {toml_string(rule_id)}\ndescription = "generated"\nseverity = {toml_string(severity)}\n'
        f"pattern = {toml_string(pattern)}\nkeywords = [{toml_string(prefix.lower())}]\n"
        f"generate = {toml_string(prefix + '[A-Za-z0-9]{' + str(length) + '}')}\n"
    )
    ruleset = load_rule_text(text)
    assert ruleset is not REFUSED
    (rule,) = ruleset.rules
    assert (rule.id, rule.severity, rule.keywords) == (rule_id, severity, (prefix.lower(),))
    secret = rules.generate(rule.generate, rng)
    match = rule.regex.search(f'const key = "{secret}";'.encode())
    assert match and match.group("secret").decode() == secret
    from app.secrets.engine import Matcher

    assert Matcher(ruleset).rules == ruleset.rules
