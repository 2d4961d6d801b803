"""Plant freshly generated fake credentials (and decoys) into real bundles, remembering where.

Used by the recall/precision tests and by bench/secrets_bench.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.secrets.engine import Matcher, scan_bytes
from app.secrets.rules import Rule, RuleSet, fake_secret

# Extra realistic homes for a bare provider token, beyond each rule's own examples.
TOKEN_CONTEXTS = [
    'var cfg={credentials:{key:"{secret}",region:"eu"}};',
    "const url=`${base}/v1/items?access_key={secret}&limit=10`;",
    'fetch("https://api.example.org/data?token={secret}");',
    'JSON.parse("{\\"token\\":\\"{secret}\\",\\"v\\":1}");',
    "e.exports={apiToken:'{secret}'};",
]

DECOYS = [
    "const k=process.env.STRIPE_SECRET_KEY;",
    'headers:{Authorization:"Bearer "+e.apiKey}',
    'Stripe("pk_live_51HqJ2kLmNoPqRsTuVwXyZ0123456789abcdefGHIJ")',
    'mapboxgl.accessToken="pk.eyJ1IjoiZGVtbyIsImEiOiJja2V4YW1wbGUwMDAwMDAwMDAwMDAwMDAwIn0.aBcDeFgHiJkLmNoPqRsTuV";',
    'grecaptcha.render("c",{sitekey:"6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI"})',
    '<script src="/app.js" integrity="sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"></script>',
    '{type:"password",name:"password",autoComplete:"current-password"}',
    'const id="3b241101-e2bb-4255-8caf-4136c566a962";',
    'client_secret:"YOUR_CLIENT_SECRET"',
    'aws_access_key_id="AKIAIOSFODNN7EXAMPLE"',
    'aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    'password:"changeme"',
    'token:"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    "const api_key=e.apiKey,secret=t.secret;",
]


@dataclass(frozen=True)
class Plant:
    rule: str
    value: bytes
    start: int  # offset of the secret in the planted file


def _contexts(rule: Rule, matcher: Matcher, rng: random.Random) -> list[str]:
    contexts = list(rule.true_examples)
    probe = fake_secret(rule, rng)
    if [f.rule for f in scan_bytes(matcher, f'v="{probe}"'.encode())] == [rule.id]:
        contexts += TOKEN_CONTEXTS  # a bare token: it can live anywhere
    return contexts


def _safe_points(data: bytes, count: int, rng: random.Random) -> list[int]:
    """Insertion points right after a `;` so no existing token is split."""
    points: set[int] = set()
    attempts = 0
    while len(points) < count and attempts < count * 50:
        attempts += 1
        at = data.find(b";", rng.randrange(0, max(1, len(data))))
        if at >= 0:
            points.add(at + 1)
    return sorted(points)


def plant(data: bytes, ruleset: RuleSet, matcher: Matcher, rng: random.Random, decoys: bool = True):
    """Return (new bytes, plants): one snippet per rule context, plus decoys, at random places."""
    snippets: list[tuple[str | None, str, str | None]] = []  # (rule, text, secret)
    for rule in ruleset.rules:
        for context in _contexts(rule, matcher, rng):
            secret = fake_secret(rule, rng)
            snippets.append((rule.id, context.replace("{secret}", secret), secret))
    if decoys:
        snippets += [(None, d, None) for d in DECOYS]
        for rule in ruleset.rules:
            snippets += [(None, text, None) for text in rule.false_examples]
    rng.shuffle(snippets)
    points = _safe_points(data, len(snippets), rng)
    out = bytearray()
    plants: list[Plant] = []
    previous = 0
    for point, (rule_id, text, secret) in zip(points, snippets, strict=False):
        out += data[previous:point]
        previous = point
        insert = ("\n" + text + "\n").encode()
        if rule_id is not None and secret is not None:
            plants.append(Plant(rule_id, secret.encode(), len(out) + insert.index(secret.encode())))
        out += insert
    out += data[previous:]
    return bytes(out), plants
