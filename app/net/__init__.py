"""What every network module shares: URLs and names as we store them, text checks, connections pinned
to the addresses a scan resolved, and one bounded decoder for whatever a peer sends.

    check_url(url) / same_site(a, b)            app.net.urls
    normalise_domain(name) / is_address(text)   app.net.names
    pinned_transport(pin) / no_cookies()       app.net.pinning: connect only where `pin` says
    read_body(response, cap) / read_whole(...)  app.net.body: size-, ratio- and time-capped
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.net.body import Body, Decoder, read_body, read_whole
    from app.net.names import address_key, is_address, normalise_domain
    from app.net.pinning import PinFunction, no_cookies, pinned_transport
    from app.net.text import has_lone_surrogate, human_size
    from app.net.urls import check_url, same_site, site_of

# Loaded on first use: a module that needs only names or text (the secrets CLI, on every start) does
# not pay for httpx.
_HOMES = {
    "Body": "body",
    "Decoder": "body",
    "read_body": "body",
    "read_whole": "body",
    "address_key": "names",
    "is_address": "names",
    "normalise_domain": "names",
    "PinFunction": "pinning",
    "no_cookies": "pinning",
    "pinned_transport": "pinning",
    "has_lone_surrogate": "text",
    "human_size": "text",
    "check_url": "urls",
    "same_site": "urls",
    "site_of": "urls",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Body",
    "Decoder",
    "PinFunction",
    "address_key",
    "check_url",
    "has_lone_surrogate",
    "human_size",
    "is_address",
    "normalise_domain",
    "no_cookies",
    "pinned_transport",
    "read_body",
    "read_whole",
    "same_site",
    "site_of",
]
