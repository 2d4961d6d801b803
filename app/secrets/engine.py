"""The secret-scanning engine: linear-time candidates, exact matches, quiet filters.

1. Hyperscan runs every rule's expression over the raw bytes in one pass (linear time, no
   backtracking) and reports (rule, end offset) candidates.
2. Each candidate is confirmed with the rule's Python regex inside a window of at most a few
   kilobytes around it; that gives the exact bytes of the `secret` group. Bounded windows keep
   even a pathological rule or input from backtracking over a whole file.
3. Filters drop what is not a finding: placeholders, documentation examples, low entropy,
   substrings of longer blobs, values from the rule's allowlist.

Input arrives as chunks of any size; consecutive buffers overlap by more than the longest
possible match, so a secret that crosses a chunk border is found once, at its true offset.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hyperscan

from app.secrets import public
from app.secrets.proofs import DETAILS, NO_FINDING, PROOFS
from app.secrets.rules import CONFIDENCES, Rule, RuleError, RuleSet

MAX_CANDIDATES_PER_FILE = 200_000
MAX_MATCHES_REMEMBERED = 100_000  # per file, for masking context windows
MASKED_RADIUS = 240  # bytes each side of a secret that contexts may show, and that are masked
_CONFIDENCE_RANK = {name: i for i, name in enumerate(CONFIDENCES)}

# Values that are placeholders, not credentials.
_PLACEHOLDER_PARTS = (
    b"example",
    b"sample",
    b"dummy",
    b"placeholder",
    b"your",
    b"changeme",
    b"change_me",
    b"change-me",
    b"redacted",
    b"xxxx",
    b"****",
    b"....",
    b"<",
    b">",
    b"${",
    b"{{",
    b"}}",
    b"insert",
    b"replace",
    b"lorem",
    b"fake",
    b"not_a_real",
    b"abcdefgh",
    b"12345678",
)
# Words that give away a made-up value in a free-form (generic) match; provider formats may contain them.
_GENERIC_PLACEHOLDER_WORDS = (b"password", b"passwd", b"secret", b"token", b"apikey", b"api_key", b"mykey")
_COMMON_PASSWORDS = {
    b"pass",
    b"admin",
    b"root",
    b"test",
    b"qwerty",
    b"letmein",
    b"welcome",
    b"default",
    b"guest",
    b"user",
    b"username",
    b"pwd",
    b"p@ssw0rd",
    b"hunter2",
    b"foobar",
    b"foo",
    b"bar",
}
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SRI = re.compile(rb"(?:sha256|sha384|sha512)-[A-Za-z0-9+/=]+")
_REPEAT = re.compile(rb"(.)\1{7,}")
_PRINTF = re.compile(rb"%[sd](?![A-Za-z0-9])")  # "%s" as a format slot, not "%S" inside a password
_BLOB_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@dataclass
class Finding:
    rule: str
    description: str
    severity: str
    confidence: str
    file: str
    start: int  # byte offsets of the secret itself in the (decompressed) file
    end: int
    line: int  # 1-based
    column: int  # 1-based, in characters (Unicode code points), as editors count
    value: bytes = field(repr=False)
    window: bytes = field(repr=False, default=b"")  # raw bytes around the secret, for context
    window_start: int = 0
    masks: list[tuple[int, int, str]] = field(default_factory=list, repr=False)  # other secrets in the window
    source: str | None = None  # original source file, for findings inside a source map
    source_line: int | None = None
    source_column: int | None = None
    verification: dict[str, str] | None = None  # a live check's answer, when one was asked for

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.rule.encode() + b"\0" + self.value).hexdigest()[:32]

    @property
    def secret(self) -> str:
        return self.value.decode("utf-8", "replace")

    def redacted(self) -> str:
        return redact(self.secret)


def redact(secret: str) -> str:
    shown = 4 if len(secret) >= 16 else max(0, len(secret) // 4)
    return secret[:shown] + "…"


_N_LOG_N = [0.0] + [n * math.log2(n) for n in range(1, 4097)]


def shannon_entropy(value: bytes) -> float:
    """Bits per byte. H = log2(N) - sum(n log2 n) / N, with n log2 n from a table (values are short)."""
    total = len(value)
    if not total:
        return 0.0
    counts = Counter(value).values()
    if total < len(_N_LOG_N):
        return math.log2(total) - sum(map(_N_LOG_N.__getitem__, counts)) / total
    return math.log2(total) - sum(n * math.log2(n) for n in counts) / total


def _has_word(lower: bytes, words: tuple[bytes, ...]) -> bool:
    """A placeholder word in the value. In long values it must touch an edge or a separator:
    a random 100-character token contains "fake" or "your" by chance now and then."""
    for word in words:
        at = lower.find(word)
        while at >= 0:
            end = at + len(word)
            if len(lower) < 24 or not word.isalnum():
                return True
            if at == 0 or end == len(lower) or not lower[at - 1 : at].isalnum() or not lower[end : end + 1].isalnum():
                return True
            at = lower.find(word, at + 1)
    return False


def is_placeholder(value: bytes, generic: bool = True) -> bool:
    lower = value.lower()
    if lower in _COMMON_PASSWORDS or _has_word(lower, _PLACEHOLDER_PARTS):
        return True
    if generic and _has_word(lower, _GENERIC_PLACEHOLDER_WORDS):
        return True
    if _PRINTF.search(value):
        return True
    # A run of one character is a placeholder in a short value ("AKIAAAAAAAAAAAAAAAAA"); in a long one it
    # may be structure (an OpenSSH key's header, a Twitter bearer token's leading zero bytes).
    run = _REPEAT.search(value)
    return bool(run and (len(value) < 40 or run.end() - run.start() >= len(value) // 4))


def _is_generic(rule: Rule) -> bool:
    # Keyword-anchored rules (low confidence) accept any value of the right shape, so a value made of
    # placeholder words ("my_secret_token") is a placeholder; provider formats may contain such words.
    return rule.confidence == "low"


def _confidence(rule: Rule, value: bytes) -> str:
    """The rule's confidence; high when the value passes the rule's proof of format (a checksum)."""
    return "high" if rule.validate and PROOFS[rule.validate](value) else rule.confidence


def _description(rule: Rule, value: bytes) -> str:
    """The rule's description, and what the value says of itself where the rule can read it (a JWT's
    claims, never its signature)."""
    details = DETAILS[rule.validate](value) if rule.validate in DETAILS else None
    return f"{rule.description} ({details})" if details else rule.description


def _is_free_form(rule: Rule) -> bool:
    # Rules that match any string assigned to a secret-sounding name, rather than a provider format.
    return rule.id.startswith(("generic-", "hardcoded-"))


def _embedded(buf: bytes, start: int, end: int) -> bool:
    """The match sits inside a longer run of base64-like characters (a data URI, a font, a hash)."""
    left = 0
    i = start - 1
    while i >= 0 and left < 16 and buf[i] in _BLOB_CHARS:
        left += 1
        i -= 1
    right = 0
    i = end
    while i < len(buf) and right < 16 and buf[i] in _BLOB_CHARS:
        right += 1
        i += 1
    return left >= 8 and right >= 8


def keep(rule: Rule, value: bytes, buf: bytes, match_start: int, match_end: int) -> bool:
    """Decide whether a confirmed match is a finding."""
    if rule.entropy is not None and shannon_entropy(value) < rule.entropy:
        return False
    if rule.validate in NO_FINDING and NO_FINDING[rule.validate](value):
        return False
    if is_placeholder(value, generic=_is_generic(rule)):
        return False
    lower = value.lower()
    if any(word in lower for word in rule.stopwords):
        return False
    if any(regex.search(value) for regex in rule.allow_regexes):
        return False
    if _is_free_form(rule) and (_UUID.fullmatch(value) or _SRI.match(value)):
        return False
    return rule.embedded_ok or not _embedded(buf, match_start, match_end)


class Matcher:
    """A compiled rule set. Compiling takes a moment; the database is cached on disk by rule digest."""

    def __init__(self, ruleset: RuleSet, cache_dir: Path | None = None) -> None:
        self.ruleset = ruleset
        self.rules = ruleset.rules
        # Where rules overlap: the rule that declares more confidence, then the one read first, wins.
        # (Declared, not proven: a token that proves itself a JWT still yields to a provider's own rule.)
        self.rule_order = {rule.id: (-_CONFIDENCE_RANK[rule.confidence], rule.order) for rule in ruleset.rules}
        self.overlap = max(rule.max_len for rule in self.rules) * 2 + 1024
        self._hs = hyperscan
        self.db = self._load_or_compile(cache_dir)

    def _load_or_compile(self, cache_dir: Path | None):
        hs = self._hs
        cache = None
        if cache_dir is not None:
            cache = cache_dir / f"secrets-{self.ruleset.digest[:24]}-hs{hs.__version__}.db"
            try:
                db = hs.loadb(cache.read_bytes(), hs.HS_MODE_BLOCK)
                db.scratch = hs.Scratch(db)
                return db
            except (OSError, hs.error, ValueError, TypeError):
                pass
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        expressions = [rule.prefilter.encode() for rule in self.rules]
        try:
            db.compile(expressions=expressions, ids=list(range(len(expressions))), flags=[0] * len(expressions))
        except hs.error:
            self._explain_compile_error()
            raise
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # processes sharing the cache never mix writes
                tmp.write_bytes(hs.dumpb(db))
                tmp.replace(cache)
            except OSError:
                pass  # a read-only data dir only costs the compile time next run
        return db

    def _explain_compile_error(self) -> None:
        hs = self._hs
        for rule in self.rules:
            try:
                hs.Database().compile(expressions=[rule.prefilter.encode()], ids=[0], flags=[0])
            except hs.error as exc:
                raise RuleError(
                    f"rule {rule.id!r}: the pattern cannot run in the linear-time engine ({exc}); "
                    "avoid look-arounds and back-references, or give the rule a simpler `prefilter`"
                ) from None

    def candidates(self, buf: bytes) -> tuple[list[tuple[int, int]], bool]:
        """(rule index, end offset) of every candidate, and whether the cap cut the list short."""
        found: list[tuple[int, int]] = []
        truncated = False

        def on_match(rule_id: int, _from: int, to: int, _flags: int, _ctx: object) -> bool | None:
            nonlocal truncated
            found.append((rule_id, to))
            if len(found) >= MAX_CANDIDATES_PER_FILE:
                truncated = True
                return True  # stop scanning
            return None

        try:
            self.db.scan(buf, match_event_handler=on_match)
        except self._hs.ScanTerminated:
            pass
        except self._hs.error as exc:
            if not truncated:
                raise RuntimeError(f"scan failed: {exc}") from None
        return found, truncated


_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))


def _chars(data: bytes) -> int:
    """Characters in UTF-8 bytes (invalid bytes count as one each, like a lenient decoder)."""
    return len(data) if data.isascii() else len(data.translate(None, _CONTINUATION_BYTES))


class _LineCursor:
    """Line and column of offsets in one buffer, counted incrementally: candidates arrive nearly in
    order, so each byte is counted about once however many findings a buffer holds."""

    def __init__(self, buf: bytes, lines_before: int, line_chars_before: int) -> None:
        self.buf = buf
        self.pos = 0
        self.lines = lines_before  # newlines before self.pos
        self.col0 = line_chars_before  # characters of the line that is open at the buffer's start
        self.col = line_chars_before  # characters since the line's start, at self.pos

    def at(self, offset: int) -> tuple[int, int]:
        """(line, column), both 1-based, column in characters."""
        buf, pos = self.buf, self.pos
        if offset >= pos:
            newline = buf.rfind(b"\n", pos, offset)
            if newline >= 0:
                self.lines += buf.count(b"\n", pos, offset)
                self.col = _chars(buf[newline + 1 : offset])
            else:
                self.col += _chars(buf[pos:offset])
        elif buf.find(b"\n", offset, pos) < 0:
            self.col -= _chars(buf[offset:pos])
        else:
            self.lines -= buf.count(b"\n", offset, pos)
            start = buf.rfind(b"\n", 0, offset)
            self.col = _chars(buf[start + 1 : offset]) if start >= 0 else self.col0 + _chars(buf[:offset])
        self.pos = offset
        return self.lines + 1, self.col + 1


class FileScan:
    """Scans one file's bytes, fed as chunks; collects findings with exact offsets and lines."""

    def __init__(self, matcher: Matcher, name: str) -> None:
        self.matcher = matcher
        self.name = name
        self.findings: list[Finding] = []
        self.truncated = False
        self.bytes_scanned = 0
        self._seen: dict[tuple[int, int], Finding] = {}
        self._matched: list[tuple[int, int]] = []  # every match of any rule, finding or not
        self._tail = b""  # the last `overlap` bytes of the previous buffer
        self._tail_start = 0  # absolute offset of _tail[0]
        self._newlines_before_tail = 0
        self._last_newline_before_tail = -1
        self._line_chars_before_tail = 0  # characters between that newline and the tail

    def feed(self, chunk: bytes, final: bool = False) -> None:
        buf = self._tail + chunk if self._tail else chunk
        base = self._tail_start
        self.bytes_scanned += len(chunk)
        # Candidates ending in the first half of the carried-over tail were handled with the previous buffer.
        min_end = len(self._tail) - self.matcher.overlap // 2 if self._tail else -1
        self._scan(buf, base, min_end, final)
        if final:
            return
        keep_from = max(0, len(buf) - self.matcher.overlap)
        self._newlines_before_tail += buf.count(b"\n", 0, keep_from)
        last = buf.rfind(b"\n", 0, keep_from)
        if last >= 0:
            self._last_newline_before_tail = base + last
            self._line_chars_before_tail = _chars(buf[last + 1 : keep_from])
        else:
            self._line_chars_before_tail += _chars(buf[:keep_from])
        self._tail = buf[keep_from:]
        self._tail_start = base + keep_from

    def _scan(self, buf: bytes, base: int, min_end: int, final: bool) -> None:
        hits, truncated = self.matcher.candidates(buf)
        self.truncated |= truncated
        if not hits:
            return
        rules = self.matcher.rules
        self._cursor = _LineCursor(buf, self._newlines_before_tail, self._line_chars_before_tail)
        safe_end = len(buf) if final else len(buf) - self.matcher.overlap // 2
        done_until: dict[int, int] = {}
        for index, end in hits:
            if end <= min_end or end > safe_end or end <= done_until.get(index, -1):
                continue  # handled by the previous buffer, or left whole for the next one
            rule = rules[index]
            lo = max(0, end - rule.max_len - 8)
            hi = min(len(buf), end + (64 if rule.prefilter_is_pattern else rule.max_len))
            done_until[index] = end
            for match in rule.regex.finditer(buf, lo, hi):
                if (match.end() == hi and hi < len(buf)) or (match.start() == lo and lo > 0):
                    continue  # touches a window edge that is not the data's edge: may be cut short
                s, e = match.span("secret")
                if s < 0 or e <= s:
                    continue
                value = buf[s:e]
                if len(self._matched) < MAX_MATCHES_REMEMBERED:
                    self._matched.append((base + s, base + e))  # masked in every context window
                # Embedded: judged from the match's start (its keyword) to the secret's own end, not past a
                # terminator the pattern consumed (a newline after an unquoted .env value).
                if not keep(rule, value, buf, match.start(), e):
                    continue
                published = public.verdict(self.matcher.ruleset.public, value, buf, s, e)
                if published != "quiet":
                    self._add(rule, index, buf, base, s, e, value, low=published == "low")

    def _add(self, rule: Rule, index: int, buf: bytes, base: int, s: int, e: int, value: bytes, low: bool) -> None:
        key = (index, base + s)
        previous = self._seen.get(key)
        if previous is not None and previous.end - previous.start >= e - s:
            return
        line, column = self._cursor.at(s)
        window_lo = max(0, s - 320)
        finding = Finding(
            rule=rule.id,
            description=_description(rule, value),
            severity=rule.severity,
            confidence="low" if low else _confidence(rule, value),
            file=self.name,
            start=base + s,
            end=base + e,
            line=line,
            column=column,
            value=bytes(value),
            window=bytes(buf[window_lo : e + 320]),
            window_start=base + window_lo,
        )
        if previous is not None:
            self.findings.remove(previous)
        self._seen[key] = finding
        self.findings.append(finding)

    def result(self) -> list[Finding]:
        if not self.findings:
            return []
        findings = resolve_overlaps(self.findings, self.matcher.rule_order)
        mask_neighbours(findings, sorted(set(self._matched)))
        return findings


def resolve_overlaps(findings: list[Finding], order: dict[str, tuple[int, int]]) -> list[Finding]:
    """One finding per span: where rules overlap, the more confident, more specific rule wins."""

    def rank(f: Finding) -> tuple[tuple[int, int], int]:
        return (order.get(f.rule, (0, 1 << 30)), -(f.end - f.start))

    # Kept spans never overlap, so sorted by start they are sorted by end too: one neighbour to check.
    starts: list[int] = []
    kept: list[Finding] = []
    for finding in sorted(findings, key=rank):
        i = bisect_left(starts, finding.end)
        if i and kept[i - 1].end > finding.start:
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept


# In a context window, values that look like credentials whether or not a rule knows them: a quoted
# string, or a value assigned without quotes (.env files), of token characters that looks random.
_QUOTED_VALUE = re.compile(rb"""(["'`])([A-Za-z0-9+/=_\-.~:$!*@%]{12,512})\1""")
_ASSIGNED_VALUE = re.compile(rb"""[:=][ \t]{0,3}([A-Za-z0-9+/=_\-.~]{16,512})(?![A-Za-z0-9+/=_\-.~])""")
_DIGIT = re.compile(rb"[0-9]")
_LETTER = re.compile(rb"[A-Za-z]")


def looks_random(value: bytes) -> bool:
    """The entropy of a key rather than of a word, a date or a number: letters and digits, or (when long
    enough) letters of both cases alone."""
    if len(value) < 12 or not _LETTER.search(value):
        return False
    if _DIGIT.search(value):
        return shannon_entropy(value) >= (3.3 if len(value) < 20 else 3.5)
    # (The cheap tests first: most quoted strings in code are words and identifiers.)
    return len(value) >= 20 and value != value.lower() and value != value.upper() and shannon_entropy(value) >= 3.9


def random_strings(window: bytes) -> Iterator[tuple[int, int]]:
    """Spans of the values in `window` that could be credentials nobody wrote a rule for."""
    for match in _QUOTED_VALUE.finditer(window):
        if looks_random(match.group(2)):
            yield match.span(2)
    for match in _ASSIGNED_VALUE.finditer(window):
        if looks_random(match.group(1)):
            yield match.span(1)


def mask_neighbours(findings: list[Finding], matched: list[tuple[int, int]] | None = None) -> None:
    """Remember what in each finding's context window could be a secret, so that no context shows it:
    the other findings, every other match of any rule (a value filtered out as a finding still looks
    like one), and every value that looks random. `findings` are disjoint and sorted by start (as
    resolve_overlaps returns them); `matched` are (start, end) of the rules' matches, sorted."""
    matched = matched or []
    starts = [f.start for f in findings]
    ends = [f.end for f in findings]
    match_starts = [s for s, _ in matched]
    longest = max((e - s for s, e in matched), default=0)
    for f in findings:
        w_lo, w_hi = f.window_start, f.window_start + len(f.window)
        own = (f.start - w_lo, f.end - w_lo)
        masks = {
            (g.start - w_lo, g.end - w_lo): g.redacted()
            for g in findings[bisect_right(ends, w_lo) : bisect_left(starts, w_hi)]
            if g is not f
        }
        # A match that reaches into the window starts at most `longest` bytes before it.
        first = bisect_left(match_starts, w_lo - longest)
        spans = [(s - w_lo, e - w_lo) for s, e in matched[first : bisect_left(match_starts, w_hi)] if e > w_lo]
        # Only what a context can show (MASKED_RADIUS around the secret) needs looking at.
        shown_lo, shown_hi = max(0, own[0] - MASKED_RADIUS), own[1] + MASKED_RADIUS
        unknown = [(shown_lo + lo, shown_lo + hi) for lo, hi in random_strings(f.window[shown_lo:shown_hi])]
        for lo, hi in [*spans, *unknown]:
            lo, hi = max(lo, 0), min(hi, len(f.window))
            if hi <= lo or (lo < own[1] and hi > own[0]) or (lo, hi) in masks:
                continue  # the finding's own value is shown redacted already
            masks[(lo, hi)] = redact(f.window[lo:hi].decode("utf-8", "replace"))
        f.masks = [(lo, hi, text) for (lo, hi), text in masks.items()]


def scan_bytes(matcher: Matcher, data: bytes, name: str = "<bytes>", chunk_size: int = 8 << 20) -> list[Finding]:
    scan = FileScan(matcher, name)
    for chunk, final in _chunks(data, chunk_size):
        scan.feed(chunk, final)
    return scan.result()


def _chunks(data: bytes, size: int) -> Iterator[tuple[bytes, bool]]:
    if not data:
        yield b"", True
        return
    for offset in range(0, len(data), size):
        yield data[offset : offset + size], offset + size >= len(data)


def scan_chunks(matcher: Matcher, chunks: Iterable[bytes], name: str) -> FileScan:
    """Feed an iterator of chunks (a file, a decompressor, an HTTP body); the last one is final."""
    scan = FileScan(matcher, name)
    pending: bytes | None = None
    for chunk in chunks:
        if pending is not None:
            scan.feed(pending)
        pending = chunk
    scan.feed(pending or b"", final=True)
    return scan
