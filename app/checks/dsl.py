"""The expression language of nuclei's `dsl` matchers and `{{...}}` markers, evaluated safely.

A small Pratt parser builds a tree of tuples; the evaluator walks it with a step budget. Nothing is
ever handed to Python's `eval`, names resolve only in the given environment, and calls resolve only in
HELPERS, so a template can compute but cannot reach anything. Every bound (text length, nesting,
steps, the size of a string a helper builds) turns into a DslError, which a matcher treats as "no
match".

Operators, loosest first: `?:`, `||`, `&&`, `== != < <= > >= =~ !~ in`, `+ -`, `* / %`, unary
`! -`. Literals: numbers, 'single' or "double" quoted strings with backslash escapes, true/false.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import time
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.errors import DslError

MAX_TEXT = 4096  # characters in one expression
MAX_DEPTH = 64  # nesting of the tree
MAX_STEPS = 10_000  # nodes visited in one evaluation
MAX_STRING = 4 * 1024 * 1024  # characters a helper may build (repeat, concat of bodies)
MAX_REGEX = 2048

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>\|\||&&|==|!=|<=|>=|=~|!~|[-+*/%<>!?:(),])
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "=~": 3,
    "!~": 3,
    "in": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}


@dataclass(frozen=True)
class Expression:
    text: str
    tree: tuple[Any, ...]

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        return _Evaluator(env).run(self.tree)


@lru_cache(maxsize=4096)
def parse(text: str) -> Expression:
    if not isinstance(text, str):
        raise DslError("an expression must be text")
    if len(text) > MAX_TEXT:
        raise DslError(f"an expression longer than {MAX_TEXT} characters")
    parser = _Parser(_tokens(text))
    tree = parser.expression(0, 0)
    if parser.peek() is not None:
        raise DslError(f"unexpected {parser.peek()[1]!r} in {text[:80]!r}")
    return Expression(text, tree)


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    return parse(text).evaluate(env)


def helpers_used(expression: Expression) -> set[str]:
    """The names the expression calls (to refuse a template whose helpers we lack, at load time)."""
    found: set[str] = set()
    stack = [expression.tree]
    while stack:
        node = stack.pop()
        if node[0] == "call":
            found.add(node[1])
            stack.extend(node[2])
        elif node[0] in ("binary", "and", "or"):
            stack.extend(node[2:])
        elif node[0] == "unary":
            stack.append(node[2])
        elif node[0] == "if":
            stack.extend(node[1:])
    return found


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise DslError(f"cannot read {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "number":
            number = float(value) if any(c in value for c in ".eE") and not value.lower().startswith("0x") else None
            tokens.append(("value", number if number is not None else int(value, 0)))
        elif kind == "string":
            tokens.append(("value", _unquote(value[1:-1])))
        elif kind == "name" and value in ("true", "false"):
            tokens.append(("value", value == "true"))
        elif kind == "name" and value == "in":
            tokens.append(("op", "in"))
        else:
            tokens.append((kind, value))
    return tokens


def _unquote(body: str) -> str:
    if "\\" not in body:
        return body
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise DslError("the expression ends too early")
        self.index += 1
        return token

    def expect(self, op: str) -> None:
        token = self.take()
        if token != ("op", op):
            raise DslError(f"expected {op!r}, found {token[1]!r}")

    def expression(self, floor: int, depth: int) -> tuple[Any, ...]:
        if depth > MAX_DEPTH:
            raise DslError(f"an expression nested deeper than {MAX_DEPTH}")
        left = self.prefix(depth)
        while True:
            token = self.peek()
            if token is None or token[0] != "op":
                return left
            op = token[1]
            if op == "?" and floor == 0:
                self.take()
                then = self.expression(0, depth + 1)
                self.expect(":")
                otherwise = self.expression(0, depth + 1)
                left = ("if", left, then, otherwise)
                continue
            power = _BINARY.get(op)
            if power is None or power <= floor:
                return left
            self.take()
            right = self.expression(power, depth + 1)
            if op == "&&":
                left = ("and", None, left, right)
            elif op == "||":
                left = ("or", None, left, right)
            else:
                left = ("binary", op, left, right)

    def prefix(self, depth: int) -> tuple[Any, ...]:
        kind, value = self.take()
        if kind == "value":
            return ("value", value)
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take()
                args: list[tuple[Any, ...]] = []
                if self.peek() != ("op", ")"):
                    while True:
                        args.append(self.expression(0, depth + 1))
                        if self.peek() == ("op", ","):
                            self.take()
                            continue
                        break
                self.expect(")")
                return ("call", value, tuple(args))
            return ("name", value)
        if (kind, value) == ("op", "("):
            inner = self.expression(0, depth + 1)
            self.expect(")")
            return inner
        if kind == "op" and value in ("!", "-"):
            return ("unary", value, self.expression(6, depth + 1))
        raise DslError(f"unexpected {value!r}")


class _Evaluator:
    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env
        self.steps = 0

    def run(self, node: tuple[Any, ...]) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise DslError(f"an expression took more than {MAX_STEPS} steps")
        kind = node[0]
        if kind == "value":
            return node[1]
        if kind == "name":
            if node[1] not in self.env:
                raise DslError(f"no value named {node[1]!r}")
            return self.env[node[1]]
        if kind == "and":
            return _truth(self.run(node[2])) and _truth(self.run(node[3]))
        if kind == "or":
            return _truth(self.run(node[2])) or _truth(self.run(node[3]))
        if kind == "if":
            return self.run(node[2]) if _truth(self.run(node[1])) else self.run(node[3])
        if kind == "unary":
            value = self.run(node[2])
            return (not _truth(value)) if node[1] == "!" else -_number(value)
        if kind == "binary":
            return _binary(node[1], self.run(node[2]), self.run(node[3]))
        helper = _HELPERS.get(node[1])
        if helper is None:
            raise DslError(f"no helper {node[1]!r}")
        args = [self.run(arg) for arg in node[2]]
        try:
            result = helper(*args)
        except DslError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, ZeroDivisionError, re.error) as exc:
            raise DslError(f"{node[1]}(): {exc}") from None
        if isinstance(result, str | bytes) and len(result) > MAX_STRING:
            raise DslError(f"{node[1]}() built a value too large")
        return result


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value not in ("", "false")
    return bool(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            return float(text)
    raise DslError(f"not a number: {type(value).__name__}")


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _both_numbers(left: Any, right: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))


def _binary(op: str, left: Any, right: Any) -> Any:
    if op in ("==", "!="):
        if _both_numbers(left, right) or isinstance(left, bool) or isinstance(right, bool):
            equal = left == right
        elif isinstance(left, int | float) or isinstance(right, int | float):
            try:
                equal = _number(left) == _number(right)
            except (ValueError, DslError):
                equal = False
        else:
            equal = _string(left) == _string(right)
        return equal if op == "==" else not equal
    if op in ("=~", "!~"):
        found = _compiled(_string(right)).search(_string(left)) is not None
        return found if op == "=~" else not found
    if op == "in":
        return _string(left) in _string(right)
    if op == "+":
        if _both_numbers(left, right):
            return left + right
        result = _string(left) + _string(right)
        if len(result) > MAX_STRING:
            raise DslError("a value too large")
        return result
    if op in ("<", "<=", ">", ">="):
        if isinstance(left, str) and isinstance(right, str):
            try:
                a, b = _number(left), _number(right)
            except ValueError:
                a, b = left, right  # type: ignore[assignment]
        else:
            try:
                a, b = _number(left), _number(right)
            except ValueError:
                raise DslError(f"cannot compare {left!r} with {right!r}") from None
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    try:
        a, b = _number(left), _number(right)
    except ValueError:
        raise DslError(f"{op} needs numbers") from None
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise DslError("division by zero")
    if op == "/":
        return a / b
    return a % b


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_REGEX:
        raise DslError(f"a regex longer than {MAX_REGEX} characters")
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise DslError(f"bad regex: {exc}") from None


# --- helpers ---------------------------------------------------------------------------------------


def _contains_all(text: Any, *words: Any) -> bool:
    haystack = _string(text)
    return all(_string(w) in haystack for w in words)


def _contains_any(text: Any, *words: Any) -> bool:
    haystack = _string(text)
    return any(_string(w) in haystack for w in words)


def _regex(pattern: Any, text: Any) -> bool:
    return _compiled(_string(pattern)).search(_string(text)) is not None


def _length(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return len(_string(value))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else _string(value).encode("utf-8", "surrogateescape")


def _b64decode(value: Any) -> str:
    text = _string(value).strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise DslError("not base64") from None


def _hex_decode(value: Any) -> str:
    try:
        return bytes.fromhex(_string(value)).decode("utf-8", "replace")
    except ValueError:
        raise DslError("not hex") from None


def mmh3(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, signed (what nuclei's and Shodan's favicon hashes are)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def _version(text: str) -> tuple[tuple[int, ...], str]:
    text = text.strip().lstrip("vV")
    core, _, pre = re.split(r"[+]", text, maxsplit=1)[0].partition("-")
    numbers = tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[._]", core) if part != "")
    return numbers, pre


def _compare_version(left: str, right: str) -> int:
    (a, pre_a), (b, pre_b) = _version(left), _version(right)
    width = max(len(a), len(b))
    a, b = a + (0,) * (width - len(a)), b + (0,) * (width - len(b))
    if a != b:
        return -1 if a < b else 1
    if pre_a == pre_b:
        return 0
    if not pre_a or not pre_b:  # a release sorts after its pre-releases
        return 1 if not pre_a else -1
    return -1 if pre_a < pre_b else 1


_CONSTRAINT = re.compile(r"^\s*(<=|>=|==|!=|<|>|=)?\s*(\S+)\s*$")


def _compare_versions(version: Any, *constraints: Any) -> bool:
    """True when `version` satisfies every constraint ("< 3", ">= 1.2.0", "1.4" meaning equal);
    a constraint may hold several, comma-separated."""
    subject = _string(version)
    for constraint in constraints:
        for part in _string(constraint).split(","):
            match = _CONSTRAINT.match(part)
            if match is None:
                raise DslError(f"not a version constraint: {part!r}")
            op, wanted = match.group(1) or "=", match.group(2)
            order = _compare_version(subject, wanted)
            held = {
                "<": order < 0,
                "<=": order <= 0,
                ">": order > 0,
                ">=": order >= 0,
                "=": order == 0,
                "==": order == 0,
                "!=": order != 0,
            }[op]
            if not held:
                return False
    return True


def _repeat(text: Any, count: Any) -> str:
    times = int(_number(count))
    piece = _string(text)
    if times < 0 or len(piece) * times > MAX_STRING:
        raise DslError("repeat(): a value too large")
    return piece * times


def _substr(text: Any, start: Any, end: Any = None) -> str:
    value = _string(text)
    return value[int(_number(start)) : None if end is None else int(_number(end))]


def _replace_regex(text: Any, pattern: Any, replacement: Any) -> str:
    return _compiled(_string(pattern)).sub(_string(replacement).replace("\\", "\\\\"), _string(text))


def _to_number(value: Any) -> int | float:
    try:
        return _number(value)
    except ValueError:
        raise DslError(f"not a number: {_string(value)[:40]!r}") from None


def _lines(text: Any) -> list[str]:
    return _string(text).splitlines()


def _base64_py(value: Any) -> str:
    # Python's encodebytes (newline every 76 characters): what Shodan-style favicon hashes are taken over.
    return base64.encodebytes(_bytes(value)).decode("ascii")


_HELPERS: dict[str, Callable[..., Any]] = {
    "contains": lambda text, word: _string(word) in _string(text),
    "contains_all": _contains_all,
    "contains_any": _contains_any,
    "equals_any": lambda value, *options: any(_string(value) == _string(o) for o in options),
    "starts_with": lambda text, *prefixes: any(_string(text).startswith(_string(p)) for p in prefixes),
    "ends_with": lambda text, *suffixes: any(_string(text).endswith(_string(s)) for s in suffixes),
    "line_starts_with": lambda text, *p: any(line.startswith(_string(x)) for line in _lines(text) for x in p),
    "line_ends_with": lambda text, *s: any(line.endswith(_string(x)) for line in _lines(text) for x in s),
    "regex": _regex,
    "len": _length,
    "to_lower": lambda text: _string(text).lower(),
    "to_upper": lambda text: _string(text).upper(),
    "trim": lambda text, chars=None: _string(text).strip(None if chars is None else _string(chars)),
    "trim_left": lambda text, chars=None: _string(text).lstrip(None if chars is None else _string(chars)),
    "trim_right": lambda text, chars=None: _string(text).rstrip(None if chars is None else _string(chars)),
    "trim_space": lambda text: _string(text).strip(),
    "trim_prefix": lambda text, prefix: _string(text).removeprefix(_string(prefix)),
    "trim_suffix": lambda text, suffix: _string(text).removesuffix(_string(suffix)),
    "replace": lambda text, old, new: _string(text).replace(_string(old), _string(new)),
    "replace_regex": _replace_regex,
    "reverse": lambda text: _string(text)[::-1],
    "repeat": _repeat,
    "substr": _substr,
    "concat": lambda *parts: "".join(_string(p) for p in parts),
    "join": lambda separator, *parts: _string(separator).join(_string(p) for p in parts),
    "to_string": _string,
    "to_number": _to_number,
    "dec_to_hex": lambda value: format(int(_number(value)), "x"),
    "hex_to_dec": lambda value: int(_string(value), 16),
    "base64": lambda value: base64.b64encode(_bytes(value)).decode("ascii"),
    "base64_py": _base64_py,
    "base64_decode": _b64decode,
    "hex_encode": lambda value: _bytes(value).hex(),
    "hex_decode": _hex_decode,
    "url_encode": lambda value: urllib.parse.quote(_string(value), safe=""),
    "url_decode": lambda value: urllib.parse.unquote(_string(value)),
    "html_escape": lambda value: html.escape(_string(value)),
    "html_unescape": lambda value: html.unescape(_string(value)),
    "md5": lambda value: hashlib.md5(_bytes(value), usedforsecurity=False).hexdigest(),
    "sha1": lambda value: hashlib.sha1(_bytes(value), usedforsecurity=False).hexdigest(),
    "sha256": lambda value: hashlib.sha256(_bytes(value)).hexdigest(),
    "sha512": lambda value: hashlib.sha512(_bytes(value)).hexdigest(),
    "crc32": lambda value: zlib.crc32(_bytes(value)),
    "mmh3": lambda value: mmh3(_bytes(value)),
    "compare_versions": _compare_versions,
    "unix_time": lambda offset=0: int(time.time()) + int(_number(offset)),
}
HELPERS = frozenset(_HELPERS)
