"""A nuclei template (as YAML data) -> model.Template, or a reason why not.

Two kinds of "no": `TemplateError` for a template that is malformed (a missing id, a matcher without
values, a regex that does not compile) and `UnsupportedTemplate` for a well-formed one that needs what
this engine does not do (another protocol, out-of-band interaction, code, workflows). Both carry a
short reason, so a directory of thousands of community templates loads with a count per reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.checks import dsl
from app.checks.model import PARTS, SEVERITIES, Extractor, HttpRequest, Info, Matcher, RawRequest, Template
from app.errors import DslError, TemplateError, UnsupportedTemplate

MAX_PATHS = 64
MAX_PAYLOAD_VALUES = 256
MAX_REGEX_LENGTH = 4000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
# Top-level keys of protocols or features this engine does not run, with the reason counted for each.
_UNSUPPORTED_KEYS = {
    "dns": "protocol-dns",
    "file": "protocol-file",
    "network": "protocol-network",
    "tcp": "protocol-network",
    "ssl": "protocol-ssl",
    "headless": "protocol-headless",
    "websocket": "protocol-websocket",
    "whois": "protocol-whois",
    "code": "protocol-code",
    "javascript": "protocol-javascript",
    "workflows": "workflow",
    "flow": "flow",
    "multi": "protocol-multi",
}
_KNOWN_TOP = {"id", "info", "http", "requests", "variables", "self-contained", "signature", "digest", "constants"}
_REQUEST_UNSUPPORTED = {
    "fuzzing": "fuzzing",
    "race": "race",
    "race_count": "race",
    "pipeline": "pipeline",
    "unsafe": "unsafe-raw",
    "threads": "threads",
    "iterate-all": "iterate-all",
    "req-condition": "req-condition",
    "cookie-reuse": None,  # accepted: one client per target already keeps cookies between requests
    "disable-cookie": None,
    "host-redirects": None,
    "max-size": None,
    "read-all": None,
    "skip-variables-check": None,
    "digest-username": "digest-auth",
    "signature": "signature",
    "id": None,
    "name": None,
    "disable-path-automerge": None,
}
_MATCHER_TYPES = {"word", "regex", "status", "size", "binary", "dsl"}
_EXTRACTOR_TYPES = {"regex", "kval", "json", "xpath", "dsl"}


def parse_template(data: Any, path: Path | None = None) -> Template:
    """Validate one template's data. Raises TemplateError or UnsupportedTemplate (which is a TemplateError)."""
    if not isinstance(data, Mapping):
        raise TemplateError("not a template: the file must hold a YAML mapping with id, info and requests")
    template_id = data.get("id")
    if not isinstance(template_id, str) or not _ID.fullmatch(template_id):
        raise TemplateError("id must be letters, digits, dots, dashes or underscores (at most 128)")
    for key, reason in _UNSUPPORTED_KEYS.items():
        if data.get(key):
            raise UnsupportedTemplate(reason, f"{key!r} templates are not run by this engine")
    info = _info(data.get("info"))
    raw_requests = data.get("http", data.get("requests"))
    if not raw_requests:
        unknown = sorted(str(k) for k in data if k not in _KNOWN_TOP)
        raise UnsupportedTemplate("no-http-requests", f"keys {', '.join(unknown)}" if unknown else "")
    if not isinstance(raw_requests, list):
        raise TemplateError("http must be a list of requests")
    if "{{interactsh" in _flat_text(data):
        raise UnsupportedTemplate("interactsh", "out-of-band interaction is not available")
    variables = _variables(data.get("variables"))
    requests = tuple(_request(r, i) for i, r in enumerate(raw_requests, 1))
    return Template(template_id, info, requests, path, variables)


def _flat_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return " ".join(_flat_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_flat_text(v) for v in value)
    return value if isinstance(value, str) else ""


def _strings(value: Any, what: str) -> tuple[str, ...]:
    """A string, a comma-separated string (nuclei's tags/authors) or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v).strip() for v in value if str(v).strip())
    raise TemplateError(f"{what} must be a string or a list of strings")


def _info(raw: Any) -> Info:
    if not isinstance(raw, Mapping):
        raise TemplateError("info is required (name, author, severity)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TemplateError("info.name is required")
    severity = str(raw.get("severity", "unknown")).strip().lower()
    if severity not in SEVERITIES:
        raise TemplateError(f"info.severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    references = raw.get("reference")
    refs = (references,) if isinstance(references, str) else tuple(str(r) for r in references or () if r)
    classification = raw.get("classification")
    return Info(
        name=name.strip(),
        severity=severity,
        authors=_strings(raw.get("author"), "info.author"),
        tags=tuple(t.lower() for t in _strings(raw.get("tags"), "info.tags")),
        description=str(raw.get("description") or "").strip(),
        references=refs,
        remediation=str(raw.get("remediation") or "").strip(),
        classification=dict(classification) if isinstance(classification, Mapping) else {},
    )


def _variables(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise TemplateError("variables must be a mapping of name: value")
    return tuple((str(k), str(v)) for k, v in raw.items())


def _request(raw: Any, number: int) -> HttpRequest:
    where = f"request {number}"
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where} must be a mapping")
    for key, reason in _REQUEST_UNSUPPORTED.items():
        if reason and raw.get(key):
            raise UnsupportedTemplate(reason, f"{where} uses {key!r}")
    paths = _strings_list(raw.get("path"), f"{where}: path")
    raws = tuple(_raw_request(text, where) for text in _strings_list(raw.get("raw"), f"{where}: raw"))
    if not paths and not raws:
        raise TemplateError(f"{where} needs a path or a raw request")
    if len(paths) + len(raws) > MAX_PATHS:
        raise TemplateError(f"{where} has more than {MAX_PATHS} paths")
    method = str(raw.get("method", "GET")).upper()
    if not re.fullmatch(r"[A-Z]{3,10}", method):
        raise TemplateError(f"{where}: method {method!r} is not an HTTP method")
    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise TemplateError(f"{where}: headers must be a mapping")
    payloads = _payloads(raw.get("payloads"), where)
    attack = str(raw.get("attack", "batteringram")).lower()
    if attack not in ("batteringram", "pitchfork", "clusterbomb"):
        raise TemplateError(f"{where}: attack must be batteringram, pitchfork or clusterbomb")
    matchers = tuple(_matcher(m, where) for m in _list(raw.get("matchers"), f"{where}: matchers"))
    extractors = tuple(_extractor(e, where) for e in _list(raw.get("extractors"), f"{where}: extractors"))
    if not matchers and not extractors:
        raise TemplateError(f"{where} has neither matchers nor extractors: it could never report anything")
    return HttpRequest(
        method=method,
        paths=paths,
        raw=raws,
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        body=str(raw.get("body") or ""),
        redirects=bool(raw.get("redirects") or raw.get("host-redirects")),
        max_redirects=_bounded_int(raw.get("max-redirects", 10), 0, 20, f"{where}: max-redirects"),
        payloads=payloads,
        attack=attack,
        stop_at_first_match=bool(raw.get("stop-at-first-match")),
        matchers_condition=_condition(raw.get("matchers-condition"), f"{where}: matchers-condition"),
        matchers=matchers,
        extractors=extractors,
    )


def _strings_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TemplateError(f"{what} must be a string or a list of strings")


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TemplateError(f"{what} must be a list")
    return value


def _bounded_int(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TemplateError(f"{what} must be a whole number from {low} to {high}")
    return value


def _condition(value: Any, what: str) -> str:
    condition = str(value or "or").lower()
    if condition not in ("and", "or"):
        raise TemplateError(f"{what} must be 'and' or 'or'")
    return condition


def _raw_request(text: str, where: str) -> RawRequest:
    head, _, body = text.lstrip("\r\n").replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    parts = lines[0].split()
    if len(parts) < 2 or not re.fullmatch(r"[A-Z]{3,10}", parts[0]):
        raise TemplateError(f"{where}: a raw request must start with 'METHOD /path HTTP/1.1'")
    if parts[0] == "CONNECT" or not (parts[1].startswith(("/", "{{")) or "://" in parts[1]):
        raise UnsupportedTemplate("raw-request-target", f"{where}: request target {parts[1][:60]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise TemplateError(f"{where}: raw header line {line[:60]!r} has no name: value")
        headers.append((name.strip(), value.strip()))
    return RawRequest(parts[0], parts[1], tuple(headers), body.rstrip("\n") if body else "")


def _payloads(raw: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: payloads must be a mapping of name: list")
    result = []
    for name, values in raw.items():
        if isinstance(values, str):
            # A file of payloads: read from the template's folder in nuclei; not followed here (a template
            # could name any file on the machine).
            raise UnsupportedTemplate("payload-file", f"{where}: payload {name!r} names a file")
        if not isinstance(values, list) or not values:
            raise TemplateError(f"{where}: payload {name!r} must be a non-empty list")
        if len(values) > MAX_PAYLOAD_VALUES:
            raise UnsupportedTemplate("payloads-too-many", f"{where}: payload {name!r} has {len(values)} values")
        result.append((str(name), tuple(str(v) for v in values)))
    return tuple(result)


def _part(raw: Mapping, what: str) -> str:
    part = str(raw.get("part", "body")).lower()
    if part.startswith("interactsh"):
        raise UnsupportedTemplate("interactsh", f"{what} reads part {part!r}")
    if part not in PARTS:
        raise UnsupportedTemplate("part", f"{what} reads part {part!r}")
    return part


def _compile(pattern: Any, what: str, flags: int = 0) -> re.Pattern[str]:
    if not isinstance(pattern, str) or len(pattern) > MAX_REGEX_LENGTH:
        raise TemplateError(f"{what}: a regex must be a string of at most {MAX_REGEX_LENGTH} characters")
    try:
        return re.compile(pattern, flags)
    except (re.error, OverflowError, RecursionError) as exc:
        # Go's RE2 syntax mostly agrees with Python's; what it does not (e.g. \z) is counted apart.
        raise UnsupportedTemplate("regex-syntax", f"{what}: {exc}") from None


def _expressions(values: Any, what: str) -> tuple[dsl.Expression, ...]:
    texts = _strings_list(values, what)
    try:
        expressions = tuple(dsl.parse(text) for text in texts)
    except DslError as exc:
        raise UnsupportedTemplate("dsl", f"{what}: {exc}") from None
    for expression in expressions:
        unknown = dsl.helpers_used(expression) - dsl.HELPERS
        if unknown:
            raise UnsupportedTemplate("dsl", f"{what}: no helper {', '.join(sorted(unknown))}")
    return expressions


def _matcher(raw: Any, where: str) -> Matcher:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: each matcher must be a mapping")
    kind = str(raw.get("type", "")).lower()
    what = f"{where}: {kind or '?'} matcher"
    if kind not in _MATCHER_TYPES:
        raise UnsupportedTemplate(f"matcher-{kind or 'missing'}", what)
    if raw.get("encoding") and kind == "word":
        raise UnsupportedTemplate("word-encoding", what)
    insensitive = bool(raw.get("case-insensitive"))
    values: tuple[Any, ...]
    if kind == "word":
        values = tuple(str(w) for w in _list(raw.get("words"), f"{what}: words"))
        if insensitive:
            values = tuple(w.lower() for w in values)
    elif kind == "regex":
        values = tuple(
            _compile(p, what, re.IGNORECASE if insensitive else 0) for p in _list(raw.get("regex"), f"{what}: regex")
        )
    elif kind == "status":
        values = tuple(_bounded_int(s, 100, 999, f"{what}: status") for s in _list(raw.get("status"), what))
    elif kind == "size":
        values = tuple(_bounded_int(s, 0, 1 << 40, f"{what}: size") for s in _list(raw.get("size"), what))
    elif kind == "binary":
        try:
            values = tuple(bytes.fromhex(str(h)) for h in _list(raw.get("binary"), f"{what}: binary"))
        except ValueError:
            raise TemplateError(f"{what}: binary values must be hex strings") from None
    else:
        values = _expressions(raw.get("dsl"), f"{what}: dsl")
    if not values:
        raise TemplateError(f"{what} has no values to match")
    return Matcher(
        type=kind,
        values=values,
        part=_part(raw, what),
        condition=_condition(raw.get("condition"), f"{what}: condition"),
        negative=bool(raw.get("negative")),
        case_insensitive=insensitive,
        name=str(raw.get("name") or ""),
    )


def _extractor(raw: Any, where: str) -> Extractor:
    if not isinstance(raw, Mapping):
        raise TemplateError(f"{where}: each extractor must be a mapping")
    kind = str(raw.get("type", "")).lower()
    what = f"{where}: {kind or '?'} extractor"
    if kind not in _EXTRACTOR_TYPES:
        raise UnsupportedTemplate(f"extractor-{kind or 'missing'}", what)
    insensitive = bool(raw.get("case-insensitive"))
    values: tuple[Any, ...]
    if kind == "regex":
        values = tuple(
            _compile(p, what, re.IGNORECASE if insensitive else 0) for p in _list(raw.get("regex"), f"{what}: regex")
        )
    elif kind == "kval":
        values = tuple(str(k).lower().replace("-", "_") for k in _list(raw.get("kval"), f"{what}: kval"))
    elif kind == "json":
        values = tuple(_json_query(q, what) for q in _list(raw.get("json"), f"{what}: json"))
    elif kind == "xpath":
        values = tuple(str(x) for x in _list(raw.get("xpath"), f"{what}: xpath"))
    else:
        values = _expressions(raw.get("dsl"), f"{what}: dsl")
    if not values:
        raise TemplateError(f"{what} has nothing to extract")
    group = raw.get("group", 0)
    return Extractor(
        type=kind,
        values=values,
        part=_part(raw, what),
        group=_bounded_int(group, 0, 99, f"{what}: group"),
        attribute=str(raw.get("attribute") or ""),
        name=str(raw.get("name") or ""),
        internal=bool(raw.get("internal")),
        case_insensitive=insensitive,
    )


_JSON_STEP = re.compile(r"""\.(?:([A-Za-z_][\w\-]*)|\[\s*"([^"]*)"\s*\]|\[(\d+)\]|\[\])|\[(\d+)\]|\[\]""")


def _json_query(query: Any, what: str) -> tuple[tuple[str, Any], ...]:
    """The subset of jq paths nuclei's json extractor is documented with: `.a.b`, `.a[0]`, `.a[]`, `.["k"]`.
    Returned as steps: ("key", name), ("index", n), ("each", None)."""
    text = str(query).strip()
    if text in (".", ""):
        return ()
    steps: list[tuple[str, Any]] = []
    at = 0
    while at < len(text):
        match = _JSON_STEP.match(text, at)
        if not match:
            raise UnsupportedTemplate("json-query", f"{what}: {text[:80]!r} is not a plain path (.a.b[0][])")
        key, quoted, index, bare_index = match.groups()
        if key is not None or quoted is not None:
            steps.append(("key", key if key is not None else quoted))
        elif index is not None or bare_index is not None:
            steps.append(("index", int(index if index is not None else bare_index)))
        else:
            steps.append(("each", None))
        # "..a" or ".a.[]" are not paths
        at = match.end()
    return tuple(steps)
