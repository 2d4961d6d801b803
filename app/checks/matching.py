"""Matchers and extractors over one response, as nuclei documents their semantics.

The response is hostile: bodies arrive capped (the runner reads at most a few megabytes), regexes run on
that capped text only, XPath runs on a parsed tree of it with network access and entities off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree, html

from app.checks import dsl
from app.checks.model import Extractor, HttpRequest, Matcher
from app.errors import DslError

MAX_EXTRACTED = 32  # values kept per extractor


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    duration: float = 0.0
    url: str = ""
    request: str = ""  # the request as sent (first line and headers), for evidence
    _text: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.body.decode("utf-8", "replace")
        return self._text

    @property
    def header_text(self) -> str:
        return "".join(f"{name}: {value}\r\n" for name, value in self.headers)

    def part(self, name: str) -> str:
        if name == "body":
            return self.text
        if name == "header":
            return self.header_text
        if name == "status":
            return str(self.status)
        # all / response / raw: the status line, the headers and the body
        return f"HTTP/1.1 {self.status}\r\n{self.header_text}\r\n{self.text}"

    def part_bytes(self, name: str) -> bytes:
        return self.body if name == "body" else self.part(name).encode("utf-8", "replace")

    def header_variables(self) -> dict[str, str]:
        """Each header as a DSL name (`content_type`, `x_powered_by`); repeated headers joined by ", "."""
        headers: dict[str, str] = {"content_type": ""}
        for name, value in self.headers:
            key = name.lower().replace("-", "_")
            if key not in _BASE_NAMES:  # a header called "Body" does not replace the body
                headers[key] = f"{headers[key]}, {value}" if headers.get(key) else value
        return headers

    def variables(self, index: int | None = None) -> dict[str, Any]:
        """The DSL's names for this response; with `index`, also the `_N` names of multi-request templates."""
        names: dict[str, Any] = {
            "status_code": self.status,
            "content_length": _content_length(self),
            "body": self.text,
            "all_headers": self.header_text,
            "header": self.header_text,
            "response": self.part("all"),
            "raw": self.part("all"),
            "duration": self.duration,
        }
        names |= self.header_variables()
        if index is not None:
            names |= {f"{key}_{index}": names[key] for key in _BASE_NAMES}
        return names


_BASE_NAMES = ("status_code", "content_length", "body", "all_headers", "header", "response", "raw", "duration")


def _content_length(response: Response) -> int:
    for name, value in response.headers:
        if name.lower() == "content-length" and value.strip().isdigit():
            return int(value)
    return len(response.body)


def matcher_passes(matcher: Matcher, response: Response, names: dict[str, Any]) -> bool:
    result = _matches(matcher, response, names)
    return not result if matcher.negative else result


def _combine(results: Iterator[bool], condition: str) -> bool:
    return all(results) if condition == "and" else any(results)


def _matches(matcher: Matcher, response: Response, names: dict[str, Any]) -> bool:
    kind = matcher.type
    if kind == "status":
        return response.status in matcher.values
    if kind == "size":
        return len(response.part_bytes(matcher.part)) in matcher.values
    if kind == "word":
        text = response.part(matcher.part)
        if matcher.case_insensitive:
            text = text.lower()
        return _combine((word in text for word in matcher.values), matcher.condition)
    if kind == "regex":
        text = response.part(matcher.part)
        return _combine((pattern.search(text) is not None for pattern in matcher.values), matcher.condition)
    if kind == "binary":
        data = response.part_bytes(matcher.part)
        return _combine((needle in data for needle in matcher.values), matcher.condition)
    return _combine((_truthy(expression, names) for expression in matcher.values), matcher.condition)


def _truthy(expression: dsl.Expression, names: dict[str, Any]) -> bool:
    try:
        return bool(expression.evaluate(names))
    except DslError:
        return False  # a helper that fails on this response (an unknown header name): no match


def request_matches(request: HttpRequest, response: Response, names: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the request's matchers hold, and the names of the named matchers that did."""
    if not request.matchers:
        return False, []
    results = [(m, matcher_passes(m, response, names)) for m in request.matchers]
    held = [m.name for m, ok in results if ok and m.name]
    if request.matchers_condition == "and":
        return all(ok for _, ok in results), held
    return any(ok for _, ok in results), held


def extract(extractor: Extractor, response: Response, names: dict[str, Any]) -> list[str]:
    values: list[str] = []
    kind = extractor.type
    if kind == "regex":
        text = response.part(extractor.part)
        for pattern in extractor.values:
            for match in pattern.finditer(text):
                if extractor.group <= (pattern.groups or 0):
                    values.append(match.group(extractor.group) or "")
                if len(values) >= MAX_EXTRACTED:
                    break
    elif kind == "kval":
        header_names = response.header_variables()
        values = [header_names[key] for key in extractor.values if key in header_names]
    elif kind == "json":
        try:
            document = json.loads(response.part(extractor.part))
        except ValueError:
            return []
        for query in extractor.values:
            values.extend(_json_text(v) for v in _walk(document, query))
    elif kind == "xpath":
        values = _xpath(extractor, response)
    else:
        for expression in extractor.values:
            try:
                value = expression.evaluate(names)
            except DslError:
                continue
            if value not in (None, ""):
                values.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    unique = list(dict.fromkeys(v for v in values if v is not None))
    return unique[:MAX_EXTRACTED]


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))[:4096]


def _walk(value: Any, steps: tuple[tuple[str, Any], ...]) -> Iterator[Any]:
    if not steps:
        yield value
        return
    (kind, arg), rest = steps[0], steps[1:]
    if (
        kind == "key"
        and isinstance(value, dict)
        and arg in value
        or kind == "index"
        and isinstance(value, list)
        and -len(value) <= arg < len(value)
    ):
        yield from _walk(value[arg], rest)
    elif kind == "each":
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for item in list(items)[:1000]:
            yield from _walk(item, rest)


# No network, no entity expansion, no DTD loading: an XML body may try all three.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_HTML_PARSER = html.HTMLParser(no_network=True)


def _xpath(extractor: Extractor, response: Response) -> list[str]:
    data = response.part_bytes(extractor.part)
    if not data.strip():
        return []
    try:
        is_xml = data.lstrip()[:5] == b"<?xml"
        tree = etree.fromstring(data, _XML_PARSER) if is_xml else html.fromstring(data, parser=_HTML_PARSER)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return []
    values: list[str] = []
    for query in extractor.values:
        try:
            found = tree.xpath(query)
        except etree.XPathError:
            continue
        for node in found if isinstance(found, list) else [found]:
            if extractor.attribute and hasattr(node, "get"):
                value = node.get(extractor.attribute)
            elif hasattr(node, "text_content"):
                value = node.text_content()
            elif hasattr(node, "text"):
                value = node.text
            else:
                value = str(node)
            if value:
                values.append(value.strip())
    return values
