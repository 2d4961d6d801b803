"""Secret rules: load them from TOML (shipped + user files), validate them, and make fake secrets.

A rule is data. Loading checks everything a broken rule could get wrong — a pattern without a
`secret` group, a pattern Hyperscan cannot compile, a bad severity — and names the rule and the
problem, so a user's rule file fails early with a message instead of at scan time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
import tomllib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from app.errors import RuleError
from app.secrets import public
from app.secrets.proofs import COMPLETE, PROOFS

BUILTIN_RULES = Path(__file__).with_name("rules.d")  # *.toml, read in name order
SEVERITIES = ("low", "medium", "high", "critical")
CONFIDENCES = ("low", "medium", "high")


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    severity: str
    confidence: str
    pattern: str
    keywords: tuple[str, ...]
    prefilter: str  # the expression the multi-pattern engine searches for
    entropy: float | None = None
    max_len: int = 512
    embedded_ok: bool = False
    validate: str | None = None  # a proof of format (app/secrets/proofs.py): passed -> high confidence
    allow_patterns: tuple[str, ...] = ()
    stopwords: tuple[bytes, ...] = ()
    generate: str | None = None
    true_examples: tuple[str, ...] = ()
    false_examples: tuple[str, ...] = ()
    order: int = 0  # position in the rule files: earlier (more specific) rules win overlaps

    # Compiled on first use: a scan confirms candidates of a few dozen rules, and compiling all of
    # them would be most of a short scan's start-up. Loading has checked that they compile.
    @cached_property
    def regex(self) -> re.Pattern[bytes]:
        return _compile(self.id, self.pattern)

    @cached_property
    def allow_regexes(self) -> tuple[re.Pattern[bytes], ...]:
        return tuple(re.compile(p.encode()) for p in self.allow_patterns)

    @cached_property
    def prefilter_is_pattern(self) -> bool:  # asked once per candidate: worked out once per rule
        return self.prefilter == _prefilter_of(self.pattern)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    digest: str  # identifies the exact rule texts (cache key for the compiled database)
    public: tuple[public.PublicValue, ...] = ()  # values no rule reports (app/secrets/public.py)

    def __len__(self) -> int:
        return len(self.rules)

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


# Inside JS strings and JSON a token often follows an escaped newline or tab ("...\\nghp_..."): the
# "n" is a word character, so a leading \b would not fire. The exact regex also accepts an escape
# there; the prefilter (Hyperscan has no look-behind) drops the leading \b, which only adds candidates.
_LEADING_BOUNDARY = re.compile(r"^((?:\(\?[a-z]+\))?)\\b")


def _prefilter_of(pattern: str) -> str:
    # Hyperscan has no named groups; the group only matters to the exact (Python) match.
    return _LEADING_BOUNDARY.sub(r"\1", pattern).replace("(?P<secret>", "(?:")


def _exact(pattern: str) -> str:
    return _LEADING_BOUNDARY.sub(lambda m: m.group(1) + r"(?:\b|(?<=\\[nrt]))", pattern)


# What re.compile raises for a pattern it cannot take: a syntax error, a repetition count over its
# limit ("a{99999999999}"), groups nested thousands deep.
_REGEX_ERRORS = (re.error, OverflowError, RecursionError)


def _compile(rule_id: str, pattern: str) -> re.Pattern[bytes]:
    try:
        regex = re.compile(_exact(pattern).encode())
    except _REGEX_ERRORS as exc:
        raise RuleError(f"rule {rule_id!r}: invalid pattern: {exc or type(exc).__name__}") from None
    if "secret" not in regex.groupindex:
        raise RuleError(f"rule {rule_id!r}: the pattern needs a named group (?P<secret>...) around the credential")
    return regex


def _rule_from(raw: dict, order: int, source: str, *, compile_check: bool = True) -> Rule:
    """A validated rule. `compile_check` False skips compiling the patterns, for rule texts that were
    compiled successfully before (the parsed-rules cache)."""
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9\-]{1,63}", rule_id):
        raise RuleError(f"{source}: rule #{order + 1} needs an id of lowercase letters, digits and dashes")
    for key in ("description", "pattern"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise RuleError(f"rule {rule_id!r}: {key!r} is required")
    severity = raw.get("severity", "medium")
    if severity not in SEVERITIES:
        raise RuleError(f"rule {rule_id!r}: severity must be one of {', '.join(SEVERITIES)}")
    confidence = raw.get("confidence", "medium")
    if confidence not in CONFIDENCES:
        raise RuleError(f"rule {rule_id!r}: confidence must be one of {', '.join(CONFIDENCES)}")
    keywords = raw.get("keywords", [])
    if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) and k for k in keywords):
        raise RuleError(f"rule {rule_id!r}: keywords must be a non-empty list of strings")
    allow, examples = _table(rule_id, raw, "allowlist"), _table(rule_id, raw, "examples")
    max_len = raw.get("max_len", 512)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or not 8 <= max_len <= 65536:
        raise RuleError(f"rule {rule_id!r}: max_len must be a whole number between 8 and 65536")
    entropy = raw.get("entropy")
    if entropy is not None and (
        isinstance(entropy, bool) or not isinstance(entropy, int | float) or not 0 <= entropy <= 8
    ):
        raise RuleError(f"rule {rule_id!r}: entropy must be a number of bits per character from 0 to 8")
    for key in ("prefilter", "generate"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            raise RuleError(f"rule {rule_id!r}: {key!r} must be a non-empty string")
    validate = raw.get("validate")
    if validate is not None and validate not in PROOFS:
        raise RuleError(f"rule {rule_id!r}: validate must be one of {', '.join(PROOFS)}")
    if not isinstance(raw.get("embedded_ok", False), bool):
        raise RuleError(f"rule {rule_id!r}: embedded_ok must be true or false")
    allow_patterns = tuple(_strings(rule_id, allow, "regexes", "allowlist"))
    rule = Rule(
        id=rule_id,
        description=raw["description"],
        severity=severity,
        confidence=confidence,
        pattern=raw["pattern"],
        keywords=tuple(k.lower() for k in keywords),
        prefilter=raw.get("prefilter") or _prefilter_of(raw["pattern"]),
        entropy=float(entropy) if entropy is not None else None,
        max_len=max_len,
        embedded_ok=raw.get("embedded_ok", False),
        validate=validate,
        allow_patterns=allow_patterns,
        stopwords=tuple(w.lower().encode() for w in _strings(rule_id, allow, "stopwords", "allowlist")),
        generate=raw.get("generate"),
        true_examples=tuple(_strings(rule_id, examples, "true", "examples")),
        false_examples=tuple(_strings(rule_id, examples, "false", "examples")),
        order=order,
    )
    if compile_check:
        rule.__dict__["regex"] = _compile(rule_id, rule.pattern)  # fills the cached property
        try:
            rule.__dict__["allow_regexes"] = tuple(re.compile(p.encode()) for p in allow_patterns)
        except _REGEX_ERRORS as exc:
            raise RuleError(f"rule {rule_id!r}: invalid allowlist regex: {exc or type(exc).__name__}") from None
    return rule


def _table(rule_id: str, raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise RuleError(f"rule {rule_id!r}: {key} must be a table, e.g. {key} = {{ ... }}")
    return value


def _strings(rule_id: str, table: dict, key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"rule {rule_id!r}: {where}.{key} must be a list of strings")
    return value


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"cannot read rule file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RuleError(f"rule file {path} is not UTF-8 text") from None


def _parse(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"rule file {path} is not valid TOML: {exc}") from None


def _contents(path: Path, data: dict) -> tuple[list[dict], list[public.PublicValue]]:
    # A file may hold only values that are public by design ([[public]]), or families that get no
    # rule and why ([[unsupported]]).
    other = isinstance(data.get("public"), list) or isinstance(data.get("unsupported"), list)
    rules = data.get("rules", [] if other else None)
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RuleError(f"rule file {path} must contain [[rules]] tables")
    public_values = data.get("public", [])
    if not isinstance(public_values, list) or not all(isinstance(r, dict) for r in public_values):
        raise RuleError(f"rule file {path}: public values must be [[public]] tables")
    return rules, [public.parse(raw, str(path)) for raw in public_values]


# Parsed rule files are cached as JSON by the digest of their texts: parsing the TOML and compiling
# every pattern is most of a short scan's start-up. A hit skips both (the texts were checked when the
# entry was written); every other check still runs. Bump the format when what is cached changes.
_CACHE_FORMAT = f"rules1-py{sys.version_info[0]}.{sys.version_info[1]}"


def _cache_file(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"secrets-{digest[:24]}-{_CACHE_FORMAT}.json"


def _cached_parse(cache_dir: Path | None, digest: str, count: int) -> list[dict] | None:
    if cache_dir is None:
        return None
    try:
        data = json.loads(_cache_file(cache_dir, digest).read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("digest") == digest:
        files = data.get("files")
        if isinstance(files, list) and len(files) == count and all(isinstance(f, dict) for f in files):
            return files
    return None


def _store_parse(cache_dir: Path | None, digest: str, parsed: list[dict]) -> None:
    if cache_dir is None:
        return
    try:
        text = json.dumps({"digest": digest, "files": parsed})
    except (TypeError, ValueError):
        return  # a TOML date or time in a user's file: not cached, parsed each run
    cache = _cache_file(cache_dir, digest)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # processes sharing the cache never mix writes
        tmp.write_text(text)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only data dir only costs the parse next run


def builtin_rule_files() -> list[Path]:
    """The shipped rule files, one per family of providers; earlier files win where rules overlap."""
    return sorted(BUILTIN_RULES.glob("*.toml"))


def load_rules(
    extra: list[Path] | tuple[Path, ...] = (), *, builtin: bool = True, cache_dir: Path | None = None
) -> RuleSet:
    """The shipped rules plus the user's files. A user rule with a shipped id replaces it."""
    sources = (builtin_rule_files() if builtin else []) + [Path(p) for p in extra]
    texts = [_read_text(path) for path in sources]
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    parsed = _cached_parse(cache_dir, digest, len(sources))
    from_cache = parsed is not None
    if parsed is None:
        parsed = [_parse(path, text) for path, text in zip(sources, texts, strict=True)]
    merged: dict[str, Rule] = {}
    order = 0
    public_values: dict[str, public.PublicValue] = {}
    for path, data in zip(sources, parsed, strict=True):
        raw_rules, values = _contents(path, data)
        public_values |= {value.id: value for value in values}
        for raw in raw_rules:
            rule = _rule_from(raw, order, str(path), compile_check=not from_cache)
            order += 1
            previous = merged.get(rule.id)
            merged[rule.id] = rule if previous is None else _replace_order(rule, previous.order)
    if not merged:
        raise RuleError("no rules to scan with")
    if not from_cache:
        _store_parse(cache_dir, digest, parsed)
    return RuleSet(tuple(sorted(merged.values(), key=lambda r: r.order)), digest, tuple(public_values.values()))


def _replace_order(rule: Rule, order: int) -> Rule:
    return replace(rule, order=order)


# ---------------------------------------------------------------- fake secrets for tests and benchmarks

_TOKEN = re.compile(r"\\(.)|\[((?:\\.|[^\]])+)\]|\{(\d+)(?:,(\d+))?\}|(.)", re.DOTALL)


def _expand_class(body: str) -> str:
    chars: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            chars.append(body[i + 1])
            i += 2
            continue
        if i + 2 < len(body) and body[i + 1] == "-":
            chars.extend(chr(o) for o in range(ord(c), ord(body[i + 2]) + 1))
            i += 3
            continue
        chars.append(c)
        i += 1
    return "".join(chars)


def generate(spec: str, rng: random.Random) -> str:
    """A fake value from a tiny pattern language: literals, \\x escapes, [classes], {n} and {n,m}."""
    out: list[str] = []
    last: str | None = None  # alphabet of the previous atom, for a following quantifier
    for escaped, klass, n, m, literal in _TOKEN.findall(spec):
        if n:
            count = rng.randint(int(n), int(m or n))
            out.pop()
            out.extend(rng.choice(last) for _ in range(count))
            continue
        if klass:
            last = _expand_class(klass)
            out.append(rng.choice(last))
        else:
            last = escaped or literal
            out.append(last)
    return "".join(out)


def fake_secret(rule: Rule, rng: random.Random) -> str:
    """A fake secret for the rule, from its `generate` pattern; one that passes the rule's proof of
    format where it has one (so it is found with high confidence)."""
    if not rule.generate:
        raise RuleError(f"rule {rule.id!r} has no generate pattern")
    value = generate(rule.generate, rng)
    return COMPLETE[rule.validate](value) if rule.validate else value
