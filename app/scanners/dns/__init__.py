"""DNS for recon: a fast asyncio stub resolver, record lookups, wildcard-aware brute force, takeover hints.

async with Resolver(["127.0.0.1:5353"]) as resolver:       # nameservers: RESOLVERS when None
    answer = await resolver.lookup("www.example.com", "A")  # transport.py
    found = await resolve_names(resolver, names)            # lookups.py: thousands at once
    names, wildcards = await brute_force(resolver, "example.com", load_wordlist())   # bruteforce.py
    provider = await takeover_check(resolver, cname_target)                         # takeover.py
"""

from app.errors import DNSFailure, ResolverError
from app.scanners.dns.bruteforce import BUILTIN_WORDLIST, brute_force, load_wordlist, random_label, wildcard_answers
from app.scanners.dns.lookups import RECORD_TYPES, records, resolve_names
from app.scanners.dns.resolvers import parse_resolver, resolvers_from_settings, system_resolvers
from app.scanners.dns.takeover import (
    TakeoverProvider,
    TakeoverVerdict,
    http_takeover_provider,
    load_takeover_providers,
    takeover_candidate,
    takeover_check,
    takeover_provider,
    takeover_verdict,
)
from app.scanners.dns.transport import MAX_TXT_CHARS, Answer, Resolver, normalise_name

__all__ = [
    "BUILTIN_WORDLIST",
    "MAX_TXT_CHARS",
    "RECORD_TYPES",
    "Answer",
    "DNSFailure",
    "Resolver",
    "ResolverError",
    "TakeoverProvider",
    "brute_force",
    "TakeoverProvider",
    "TakeoverVerdict",
    "http_takeover_provider",
    "load_takeover_providers",
    "takeover_verdict",
    "load_wordlist",
    "normalise_name",
    "parse_resolver",
    "random_label",
    "records",
    "resolve_names",
    "resolvers_from_settings",
    "system_resolvers",
    "takeover_candidate",
    "takeover_check",
    "takeover_provider",
    "wildcard_answers",
]
