"""Reading an HTTP response body from a hostile server: size-capped after decoding, bomb-proof.

httpx would inflate a whole network read of gzip/brotli at once, however big it expands; this
decodes the raw stream ourselves, a bounded step at a time, and stops at the size and ratio caps.
"""

from __future__ import annotations

import httpx

from app.secrets.inputs import Decoder, SkipFile
from app.secrets.inputs import Limits as DecodeLimits

_ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "gzip", "br": "brotli"}


class BodyRefused(Exception):
    """The body was not read whole; the message says why (too big, a bomb, an unknown encoding)."""


def _decoder(content_encoding: str, max_bytes: int, max_ratio: int) -> Decoder | None:
    names = [e.strip().lower() for e in content_encoding.split(",") if e.strip() and e.strip() != "identity"]
    if not names:
        return None
    if len(names) > 1 or names[0] not in _ENCODINGS:
        raise BodyRefused(f"unsupported Content-Encoding {content_encoding!r}")
    return Decoder(_ENCODINGS[names[0]], DecodeLimits(max_bytes, max_ratio, chunk_size=1 << 20))


async def read_body(response: httpx.Response, max_bytes: int, max_ratio: int = 100, truncate: bool = False) -> bytes:
    """The decoded body of a streamed response. Over `max_bytes`: BodyRefused, or the first
    `max_bytes` when `truncate` (enough for a title or a hash)."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(f"larger than the {max_bytes:,}-byte cap ({int(declared):,} bytes)")
    decoder = _decoder(response.headers.get("content-encoding", ""), max_bytes + 1, max_ratio)
    body = bytearray()
    try:
        async for raw in response.aiter_raw():
            for chunk in decoder.feed(raw) if decoder else (raw,):
                body += chunk
                if len(body) > max_bytes:
                    if truncate:
                        return bytes(body[:max_bytes])
                    raise BodyRefused(f"larger than the {max_bytes:,}-byte cap once decoded")
        if decoder:
            body += b"".join(decoder.finish())
    except SkipFile as reason:
        if truncate and "cap" in str(reason) and body:
            return bytes(body[:max_bytes])
        raise BodyRefused(str(reason)) from None
    return bytes(body[:max_bytes]) if truncate else bytes(body)
