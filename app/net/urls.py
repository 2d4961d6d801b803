"""URLs and sites: validating what a user asks us to fetch, and what counts as the same site."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urldefrag, urlsplit

from publicsuffixlist import PublicSuffixList

from app.errors import InvalidURL
from app.net.text import has_lone_surrogate

MAX_URL_LENGTH = 2048


def check_url(url: str) -> str:
    """Validate a target URL a user typed; returns it normalised (no fragment)."""
    url = (url or "").strip()
    if not url:
        raise InvalidURL("a URL is required, e.g. https://example.com/")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidURL("the URL contains spaces or control characters")
    if has_lone_surrogate(url):
        raise InvalidURL("the URL is not valid Unicode text (it holds a lone surrogate)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidURL("only http:// and https:// URLs can be scanned")
    if not parts.hostname:
        raise InvalidURL("the URL has no host name")
    if parts.username or parts.password:
        raise InvalidURL("remove the user name and password from the URL")
    if port == 0:
        raise InvalidURL("port 0 is not a valid port")
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise InvalidURL(f"{parts.hostname!r} is not a valid host name") from None
    return urldefrag(url)[0]


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # reading the list takes a moment: once per process, when first needed


def site_of(host: str) -> str:
    """The registrable domain (eTLD+1) of a host; an IP address or a bare name is its own site."""
    host = host.lower().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    return _psl().privatesuffix(host) or host


def same_site(url: str, target: str) -> bool:
    a, b = urlsplit(url).hostname, urlsplit(target).hostname
    return bool(a and b) and site_of(a) == site_of(b)
