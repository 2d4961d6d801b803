"""Bounded decoding of what a hostile peer sends: HTTP bodies, and compressed files.

One decoder for every encoding AssetMon accepts — gzip, deflate (zlib-wrapped as the standard says, or
raw as some servers send it) and brotli, in a Content-Encoding or in a .gz/.br file. It decodes a
bounded step at a time, so its output never runs ahead of what the caller keeps, and it stops at a
size cap and, where asked, a ratio cap: a decompression bomb costs a few steps of memory, not
gigabytes. (httpx would inflate a whole network read at once, however far it expands; `read_body`
reads the raw stream and decodes it here instead.)

Two ways to read a body:

- `read_body`: what arrived within the caps and the deadline, marked `truncated` when it is not all
  of it — what a probe wants (enough for a title and a hash);
- `read_whole`: all of it, or BodyRefused with the reason — what a scan of a script wants.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import brotli

from app.errors import BodyRefused, DecodeError
from app.net.text import human_size

if TYPE_CHECKING:  # a file scan decodes without loading the HTTP stack
    import httpx

# Content-Encoding names -> what decodes them
ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate", "br": "brotli"}
STEP = 1 << 20  # bytes of output per decoding step
BOMB_SLACK = 1 << 20  # below this much output a high ratio is harmless (a tiny file of zeros)


class Decoder:
    """Incremental gzip / deflate / brotli decoding whose output is at most `step` bytes per piece, and
    which raises DecodeError past `max_bytes` of output or past `max_ratio` output per input byte."""

    def __init__(
        self, kind: str, *, max_bytes: int | None = None, max_ratio: int | None = None, step: int = STEP
    ) -> None:
        if kind not in ("gzip", "deflate", "brotli"):
            raise ValueError(f"no decoder for {kind!r}")
        self.kind, self.max_bytes, self.max_ratio, self.step = kind, max_bytes, max_ratio, step
        self.consumed = self.produced = 0
        self._engine: Any = brotli.Decompressor() if kind == "brotli" else None

    def _zlib(self, first: bytes) -> Any:
        if self.kind == "deflate":
            # zlib-wrapped by the standard (RFC 9110), raw by some servers: the header tells which.
            wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
            return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # a gzip or a zlib header, whichever it is

    def _count(self, out: bytes) -> bytes:
        self.produced += len(out)
        if self.max_bytes is not None and self.produced > self.max_bytes:
            raise DecodeError(f"decompresses to more than the {human_size(self.max_bytes)} cap")
        if self.max_ratio and self.produced > BOMB_SLACK and self.produced > self.consumed * self.max_ratio:
            raise DecodeError(
                f"decompression ratio above {self.max_ratio}:1 "
                f"({human_size(self.consumed)} → {human_size(self.produced)}+): likely a decompression bomb"
            )
        return out

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.consumed += len(data)
        try:
            if self.kind == "brotli":
                out = self._engine.process(data, output_buffer_limit=self.step)
                while True:
                    if out:
                        yield self._count(out)
                    if self._engine.can_accept_more_data() or self._engine.is_finished():
                        break
                    out = self._engine.process(b"", output_buffer_limit=self.step)
                return
            if self._engine is None:
                if not data:
                    return
                self._engine = self._zlib(data)
            pending = data
            while pending:
                out = self._engine.decompress(pending, self.step)
                pending = self._engine.unconsumed_tail
                if out:
                    yield self._count(out)
        except DecodeError:
            raise
        except Exception as exc:  # zlib.error / brotli.error: corrupt data
            raise DecodeError(f"corrupt {self.kind} data: {exc}") from None

    def finish(self) -> Iterator[bytes]:
        if self.kind == "brotli" or self._engine is None:
            return
        try:
            tail = self._engine.flush()
        except Exception as exc:
            raise DecodeError(f"corrupt {self.kind} data: {exc}") from None
        if tail:
            yield self._count(tail)


def decoder_for(content_encoding: str, *, max_ratio: int | None = None) -> Decoder | None:
    """The decoder a Content-Encoding needs (None: identity); DecodeError for one we do not decode."""
    names = [e.strip().lower() for e in content_encoding.split(",") if e.strip() and e.strip().lower() != "identity"]
    if not names:
        return None
    if len(names) > 1 or names[0] not in ENCODINGS:
        raise DecodeError(f"unsupported Content-Encoding {content_encoding!r}")
    return Decoder(ENCODINGS[names[0]], max_ratio=max_ratio)


@dataclass(frozen=True)
class Body:
    data: bytes
    truncated: bool = False  # not all of it: past the cap, undecodable from some point, or cut by the deadline
    late: bool = False  # the deadline passed while it was still arriving
    problem: str | None = None  # why this is not the whole body as sent (None: it is)


async def read_body(
    response: httpx.Response, max_bytes: int, *, max_ratio: int | None = None, deadline: float | None = None
) -> Body:
    """At most `max_bytes` decoded bytes of a streamed response, reading at most `max_bytes` raw bytes,
    until `deadline` (event-loop time) if given. Never raises for what the peer sent: an encoding we do
    not decode leaves the raw bytes (with a `problem`), corrupt data keeps what was decoded before it."""
    try:
        decoder = decoder_for(response.headers.get("content-encoding", ""), max_ratio=max_ratio)
        problem = None
    except DecodeError as exc:
        decoder, problem = None, str(exc)
    body = bytearray()
    raw_read = 0
    try:
        async with asyncio.timeout_at(deadline) if deadline is not None else nullcontext():
            async for raw in response.aiter_raw():
                raw_read += len(raw)
                for piece in decoder.feed(raw) if decoder else (raw,):
                    body += piece
                    if len(body) > max_bytes:  # one byte over the cap tells "more" from "exactly the cap"
                        return Body(bytes(body[:max_bytes]), True, problem=_too_big(max_bytes, decoded=True))
                if raw_read > max_bytes:
                    return Body(bytes(body[:max_bytes]), True, problem=_too_big(max_bytes))
            if decoder:
                body += b"".join(decoder.finish())
    except DecodeError as exc:
        return Body(bytes(body[:max_bytes]), True, problem=str(exc))
    except TimeoutError:
        return Body(bytes(body[:max_bytes]), True, late=True, problem="not complete before the deadline")
    if len(body) > max_bytes:
        return Body(bytes(body[:max_bytes]), True, problem=_too_big(max_bytes, decoded=True))
    return Body(bytes(body), problem=problem)


async def read_whole(response: httpx.Response, max_bytes: int, max_ratio: int | None = 100) -> bytes:
    """The whole decoded body of a streamed response, or BodyRefused saying why not (bigger than
    `max_bytes`, a likely bomb, corrupt, an encoding we do not decode)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyRefused(f"{_too_big(max_bytes)} ({int(declared):,} bytes)")
    try:
        decoder_for(response.headers.get("content-encoding", ""))  # refuse before reading anything
    except DecodeError as exc:
        raise BodyRefused(str(exc)) from None
    body = await read_body(response, max_bytes, max_ratio=max_ratio)
    if body.problem:
        raise BodyRefused(body.problem)
    return body.data


def _too_big(max_bytes: int, decoded: bool = False) -> str:
    return f"larger than the {max_bytes:,}-byte cap" + (" once decoded" if decoded else "")
