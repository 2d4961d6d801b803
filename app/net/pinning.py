"""HTTP clients that connect where we decide, not where system DNS says.

A scan resolves names with its own resolvers and checks every address against the target's
scope; requests must then go to those addresses (with the right Host header and TLS SNI, which
httpx derives from the URL as usual). A host the pin function refuses is never connected to.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Callable
from typing import Any

import httpcore
import httpx

PinFunction = Callable[[str], str | None]  # host name -> address to connect to, None: refuse


class Refused(httpcore.ConnectError):
    """The host is not one we may contact (out of scope, or not resolved by the scan)."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, pin: PinFunction, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.pin = pin
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address=None, socket_options=None
    ):
        address = self.pin(host)
        if address is None:
            raise Refused(f"{host} is out of scope or was not resolved by this scan")
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):
        raise Refused("unix sockets are not scanned")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def pinned_transport(pin: PinFunction | None, **kwargs: Any) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(**kwargs)
    if pin is not None:
        # httpx has no public hook for the connection backend; the pool's is set once, here.
        transport._pool._network_backend = PinnedBackend(pin)
    return transport


def no_cookies() -> httpx.Cookies:
    """A cookie jar that accepts none: what one request to a target is told must not change the answer to
    the next (another check, another name on the same client)."""
    return httpx.Cookies(http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])))
