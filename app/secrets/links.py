"""What a page or a script refers to: scripts, lazy chunks, source maps, endpoints.

Everything here reads hostile text with bounded, linear regexes; nothing is executed.
Results are raw references; `discovery` resolves them and decides what to fetch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Parsing HTML in pure Python is the slow part; links live near the top of real pages.
MAX_HTML_PARSE_BYTES = 4 << 20
MAX_REFS_PER_FILE = 500
MAX_ENDPOINTS_PER_FILE = 1000


@dataclass
class PageRefs:
    base: str | None = None
    scripts: list[str] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs = PageRefs()
        self._in_script = False
        self._inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and attr.get("href") and self.refs.base is None:
            self.refs.base = attr["href"]
        elif tag == "script":
            if attr.get("src"):
                self.refs.scripts.append(attr["src"])
            else:
                self._in_script = True
                self._inline = []
        elif tag == "link" and attr.get("href"):
            rel = attr.get("rel", "").lower().split()
            if "modulepreload" in rel or ("preload" in rel and attr.get("as", "").lower() == "script"):
                self.refs.scripts.append(attr["href"])

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script:
            self._in_script = False
            text = "".join(self._inline)
            if text.strip():
                self.refs.inline.append(text)


def page_refs(html: bytes) -> PageRefs:
    parser = _PageParser()
    try:
        parser.feed(html[:MAX_HTML_PARSE_BYTES].decode("utf-8", "replace"))
        parser.close()
    except Exception:  # html.parser is lenient, but hostile markup must never stop a scan
        pass
    refs = parser.refs
    refs.scripts = _unique(s for s in refs.scripts if not s.lower().startswith(("data:", "javascript:")))
    return refs


# --- JavaScript ---------------------------------------------------------------------------

# `//# sourceMappingURL=app.js.map` (also the old `//@` form); the last one wins.
_SOURCE_MAP = re.compile(rb"//[#@][ \t]*sourceMappingURL=([\w./~%+:;,?=&@-]{1,1000000})[ \t]*(?:\*/)?[ \t]*(?:\r?\n|$)")
# A quoted .js/.mjs path: imports, `import("./chunk.js")`, Vite's `__vite__mapDeps([...])`, preload lists.
_JS_LITERAL = re.compile(rb"""["'`]((?:https?:)?[\w./~@%+-]{0,300}?\w\.m?js(?:\?[\w.=&%-]{0,100})?)["'`]""")
# webpack's chunk-name function: "static/js/"+e+"."+{12:"a1b2",34:"c3d4"}[e]+".chunk.js",
# optionally with a names map: "js/"+({12:"vendors"}[e]||e)+"."+{...}[e]+".js".
_WEBPACK_CHUNKS = re.compile(
    rb'"([\w./~-]{0,200})"\+(?:\(\{([^{}]{0,20000})\}\[\w+\]\|\|\w+\)|\w+)\+"([\w.~-]{0,20})"'
    rb'\+\{([^{}]{1,200000})\}\[\w+\]\+"([\w.~-]{0,40}\.m?js)"'
)
_MAP_ENTRY = re.compile(rb'(\w+|"[^"]{1,100}"):"([\w.~-]{1,200})"')
# webpack's public path: `__webpack_require__.p = "/static/"`, minified `r.p="/"`.
_PUBLIC_PATH = re.compile(rb"""\b[\w$]{1,40}\.p\s*=\s*["']((?:https?:)?/[\w./~%-]{0,300})["']""")

_URL = re.compile(rb"""["'`](https?://[\w.-]{1,253}(?::\d{1,5})?(?:/[^"'`\s<>\\]{0,500})?)["'`]""")
_PATH = re.compile(rb"""["'`](/[\w~%.-]{1,100}(?:/[\w~%.:{}$-]{0,100}){0,15}/?(?:\?[\w=&%.{}$-]{0,200})?)["'`]""")
_API_PATH = re.compile(
    rb"""["'`]((?:api|graphql|rest|v\d{1,2}|auth|oauth2?|admin|internal)/[\w~%./{}$-]{1,300})["'`]"""
)
_NOT_ENDPOINT = re.compile(rb"\.(?:png|jpe?g|gif|svg|webp|ico|css|woff2?|ttf|eot|otf|mp[34]|webm)(?:\?|$)", re.I)


@dataclass
class ScriptRefs:
    scripts: list[str] = field(default_factory=list)
    source_map: str | None = None
    public_path: str | None = None


def script_refs(js: bytes) -> ScriptRefs:
    refs = ScriptRefs()
    maps = _SOURCE_MAP.findall(js[-4096:]) or _SOURCE_MAP.findall(js)
    if maps:
        refs.source_map = maps[-1].decode("ascii", "replace")
    if m := _PUBLIC_PATH.search(js):
        refs.public_path = m.group(1).decode("ascii", "replace")
    found = [m.group(1) for m in _JS_LITERAL.finditer(js)]
    for m in _WEBPACK_CHUNKS.finditer(js):
        prefix, names_map, middle, hashes_map, suffix = m.groups()
        names = _parse_map(names_map or b"")
        for chunk_id, digest in _parse_map(hashes_map).items():
            found.append(prefix + names.get(chunk_id, chunk_id) + middle + digest + suffix)
    refs.scripts = _unique(r.decode("ascii", "replace") for r in found if _plausible_script(r))[:MAX_REFS_PER_FILE]
    return refs


def _parse_map(text: bytes) -> dict[bytes, bytes]:
    return {key.strip(b'"'): value for key, value in _MAP_ENTRY.findall(text)}


def _plausible_script(ref: bytes) -> bool:
    # Bare words like "index.js" in error messages are not references; a path or ./ prefix is.
    return (b"/" in ref or ref.startswith(b".")) and b"//" not in ref.split(b"://", 1)[-1]


def endpoints(js: bytes) -> list[str]:
    """URLs and paths a script refers to (API routes, services), without static assets."""
    found: list[bytes] = []
    for pattern in (_URL, _PATH, _API_PATH):
        for m in pattern.finditer(js):
            value = m.group(1)
            if not _NOT_ENDPOINT.search(value) and not value.endswith((b".js", b".mjs", b".map")):
                found.append(value)
            if len(found) >= MAX_ENDPOINTS_PER_FILE * 2:
                break
    return _unique(v.decode("utf-8", "replace") for v in found if _plausible_endpoint(v))[:MAX_ENDPOINTS_PER_FILE]


def _plausible_endpoint(value: bytes) -> bool:
    if value.startswith(b"/"):
        # "/" alone, "//", regex bodies and date formats are not routes.
        return len(value) > 1 and not value.startswith(b"//") and any(c.isalpha() for c in value.decode("latin-1"))
    return True


def _unique(values) -> list:
    seen: dict = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)
