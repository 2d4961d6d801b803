"""What a parsed template is: plain frozen dataclasses, built by parse.py, read by the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical", "unknown")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PARTS = frozenset({"body", "header", "all", "response", "raw", "status"})


@dataclass(frozen=True)
class Info:
    name: str
    severity: str
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    references: tuple[str, ...] = ()
    remediation: str = ""
    classification: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matcher:
    type: str  # word | regex | status | size | binary | dsl
    values: tuple[Any, ...]  # the words, patterns (compiled), statuses, sizes, byte strings or parsed expressions
    part: str = "body"
    condition: str = "or"
    negative: bool = False
    case_insensitive: bool = False
    name: str = ""


@dataclass(frozen=True)
class Extractor:
    type: str  # regex | kval | json | xpath | dsl
    values: tuple[Any, ...]
    part: str = "body"
    group: int = 0
    attribute: str = ""
    name: str = ""
    internal: bool = False  # a value for later requests of the template, not shown with the finding
    case_insensitive: bool = False


@dataclass(frozen=True)
class RawRequest:
    method: str
    target: str  # the request target as written, variables unresolved ("/{{path}}?a=1")
    headers: tuple[tuple[str, str], ...]
    body: str


@dataclass(frozen=True)
class HttpRequest:
    method: str = "GET"
    paths: tuple[str, ...] = ()
    raw: tuple[RawRequest, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    redirects: bool = False
    max_redirects: int = 10
    payloads: tuple[tuple[str, tuple[str, ...]], ...] = ()
    attack: str = "batteringram"
    stop_at_first_match: bool = False
    matchers_condition: str = "or"
    matchers: tuple[Matcher, ...] = ()
    extractors: tuple[Extractor, ...] = ()

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(r.method for r in self.raw) if self.raw else frozenset({self.method})


@dataclass(frozen=True)
class Template:
    id: str
    info: Info
    requests: tuple[HttpRequest, ...]
    path: Path | None = None
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def sends_bodies(self) -> bool:
        """Whether any request uses a method that can change state on the server."""
        return any(not r.methods <= SAFE_METHODS for r in self.requests)
