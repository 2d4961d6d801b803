"""Targets and scope: what is accepted, how it is stored, and what may be contacted."""

import pytest

from app.errors import ScopeError
from app.net.names import normalise_domain
from app.recon.scope import Scope, normalise_network


def test_domains_are_stored_as_punycode_lower_case_without_the_dot():
    assert normalise_domain("Bücher.Example.") == "xn--bcher-kva.example"
    assert normalise_domain("WWW.Lab.Test") == "www.lab.test"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("localhost", "not a valid domain"),
        ("a..b.com", "not a valid domain"),
        ("-x.example.com", "not a valid domain"),
        ("x" * 64 + ".com", "not a valid domain"),
        ("https://example.com/", "not a domain name"),
        ("exa mple.com", "not a domain name"),
        ("10.0.0.1", "looks like an IP address"),
    ],
)
def test_bad_domains_are_refused_with_a_reason(value, message):
    with pytest.raises(ScopeError, match=message):
        normalise_domain(value)


def test_networks_over_the_limit_are_refused():
    assert normalise_network("10.1.2.3/24", max_prefix=16) == "10.1.2.0/24"
    assert normalise_network("192.0.2.7", max_prefix=16) == "192.0.2.7/32"
    assert normalise_network("10.0.0.0/16", max_prefix=16) == "10.0.0.0/16"
    with pytest.raises(ScopeError, match=r"65,536 addresses.*limit is /17"):
        normalise_network("10.0.0.0/16", max_prefix=17)
    with pytest.raises(ScopeError, match="limit is /112"):
        normalise_network("2001:db8::/64", max_prefix=16)
    with pytest.raises(ScopeError, match="not an IP address or CIDR"):
        normalise_network("10.0.0.300")


def test_quick_targets():
    assert Scope.parse_target("Lab.Test").domains == ["lab.test"]
    assert Scope.parse_target("127.0.0.0/30").networks == ["127.0.0.0/30"]
    assert Scope.parse_target("https://app.lab.test:8443/login").urls == ["https://app.lab.test:8443/login"]
    for bad in ("", "not a target", "ftp://x.test/", "300.1.1.1", "10.0.0.0/8"):
        with pytest.raises(ScopeError):
            Scope.parse_target(bad)


def test_scope_decisions_exclude_wins():
    scope = Scope.build(
        domains=["lab.test"],
        cidrs=["127.0.0.0/29"],
        scope={
            "include": ["partner.example", "198.51.100.7"],
            "exclude": ["admin.lab.test", "*.internal.lab.test", "127.0.0.5"],
        },
    )
    assert scope.name_in_scope("lab.test") and scope.name_in_scope("www.lab.test")
    assert scope.name_in_scope("api.partner.example")
    assert not scope.name_in_scope("admin.lab.test") and not scope.name_in_scope("db.internal.lab.test")
    assert not scope.name_in_scope("evil.test") and not scope.name_in_scope("notlab.test")
    assert scope.address_in_scope("127.0.0.3")
    assert not scope.address_in_scope("127.0.0.5")
    assert scope.address_in_scope("203.0.113.9", via_names=["www.lab.test"])  # an in-scope name resolves to it
    assert not scope.address_in_scope("203.0.113.9", via_names=["admin.lab.test"])
    assert not scope.address_in_scope("203.0.113.9", via_names=["evil.test"])
    assert scope.address_in_scope("198.51.100.7")
    assert scope.addresses() == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"]


def test_a_target_needs_something_to_scan_and_clean_rules():
    with pytest.raises(ScopeError, match="at least one domain"):
        Scope.build()
    with pytest.raises(ScopeError, match="'scope' must be an object"):
        Scope.build(domains=["lab.test"], scope={"only": []})
    with pytest.raises(ScopeError, match="not a scope rule"):
        Scope.build(domains=["lab.test"], scope={"exclude": ["not a rule!"]})
    with pytest.raises(ScopeError, match="must be a list of strings"):
        Scope.build(domains=["lab.test"], scope={"exclude": [5]})
