"""The one bounded body decoder (app/net/body.py), on real HTTP answers from a loopback server: every encoding
AssetMon accepts, both ways of reading (all of it or refused; as far as the caps allow), and hostile bodies."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Iterator

import brotli
import httpx
import pytest

from app.errors import BodyRefused, DecodeError
from app.net.body import Body, Decoder, read_body, read_whole
from tests.support.tlslab import SlowLoris
from tests.support.weblab import LabServer

TEXT = b"<title>hello</title>" + b"var answer = 42;\n" * 4000  # ~70 KB, compresses well


def _raw_deflate(data: bytes) -> bytes:
    engine = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return engine.compress(data) + engine.flush()


ENCODED = {
    "identity": TEXT,
    "gzip": gzip.compress(TEXT),
    "x-gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),  # zlib-wrapped, as the standard says
    "raw-deflate": _raw_deflate(TEXT),  # as some servers send it
    "br": brotli.compress(TEXT),
}


@pytest.fixture(scope="module")
def site() -> Iterator[LabServer]:
    server = LabServer("127.0.0.1")
    for name, body in ENCODED.items():
        encoding = "deflate" if name == "raw-deflate" else name
        server.add(f"/{name}", body, content_encoding=encoding)
    server.add("/bomb", gzip.compress(b"\0" * (64 << 20)), content_encoding="gzip")  # 64 MiB from ~64 KiB
    server.add("/corrupt", gzip.compress(TEXT)[:10] + b"\xff" * 500, content_encoding="gzip")  # a header, then junk
    server.add("/unknown", b"zzzz", content_encoding="compress")
    server.add("/stacked", gzip.compress(gzip.compress(TEXT)), content_encoding="gzip, gzip")
    yield server.start()
    server.stop()


async def _get(site: LabServer | SlowLoris, path: str, reader, *args, **kwargs):
    async with (
        httpx.AsyncClient(trust_env=False) as client,
        client.stream("GET", site.url + path, headers={"Accept-Encoding": "gzip, deflate, br"}) as response,
    ):
        return await reader(response, *args, **kwargs)


def whole(site: LabServer, path: str, cap: int = 1 << 20, ratio: int | None = 100) -> bytes:
    return asyncio.run(_get(site, path, read_whole, cap, ratio))


def capped(site: LabServer, path: str, cap: int = 1 << 20, **kwargs) -> Body:
    return asyncio.run(_get(site, path, read_body, cap, **kwargs))


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_every_accepted_encoding_decodes_to_the_same_bytes(site, name):
    assert whole(site, f"/{name}") == TEXT
    body = capped(site, f"/{name}")
    assert (body.data, body.truncated, body.late, body.problem) == (TEXT, False, False, None)


def test_a_body_over_the_cap_is_refused_whole_and_cut_when_capped(site):
    with pytest.raises(BodyRefused, match="larger than the 1,000-byte cap"):
        whole(site, "/identity", cap=1000)
    with pytest.raises(BodyRefused, match="1,000-byte cap once decoded"):
        whole(site, "/gzip", cap=1000)  # small on the wire, big once decoded
    body = capped(site, "/br", cap=1000)
    assert body.data == TEXT[:1000] and body.truncated and not body.late


def test_a_decompression_bomb_costs_a_few_steps_not_its_size(site):
    with pytest.raises(BodyRefused, match="likely a decompression bomb"):
        whole(site, "/bomb", cap=256 << 20)
    body = capped(site, "/bomb", cap=2 << 20)  # a probe keeps what it may, then hangs up
    assert body.data == b"\0" * (2 << 20) and body.truncated


def test_corrupt_and_unknown_encodings(site):
    with pytest.raises(BodyRefused, match="corrupt gzip data"):
        whole(site, "/corrupt")
    corrupt = capped(site, "/corrupt")
    assert corrupt.truncated and corrupt.problem.startswith("corrupt gzip data") and TEXT.startswith(corrupt.data)
    for path, message in (("/unknown", "unsupported Content-Encoding 'compress'"), ("/stacked", "'gzip, gzip'")):
        with pytest.raises(BodyRefused, match=message):
            whole(site, path)
        raw = capped(site, path)  # a probe keeps the bytes as sent, and says why they are not decoded
        assert not raw.truncated and message in raw.problem


def test_a_deadline_keeps_what_arrived():
    drip = SlowLoris("127.0.0.1", phase="body", interval=0.05).start()  # a byte every 50 ms, never done
    try:

        async def until_deadline(response: httpx.Response) -> Body:
            return await read_body(response, 1 << 20, deadline=asyncio.get_running_loop().time() + 0.5)

        body = asyncio.run(_get(drip, "/", until_deadline))
    finally:
        drip.stop()
    assert body.late and body.truncated and body.problem == "not complete before the deadline"
    assert body.data.startswith(b"<html><head><title>Dripping</title>") and body.data.endswith(b"a")


def test_the_decoder_steps_are_bounded_and_its_caps_say_why():
    decoder = Decoder("gzip", step=4096)
    pieces = list(decoder.feed(gzip.compress(TEXT))) + list(decoder.finish())
    assert b"".join(pieces) == TEXT and max(map(len, pieces)) <= 4096
    with pytest.raises(DecodeError, match="decompresses to more than the 1.0 KiB cap"):
        list(Decoder("brotli", max_bytes=1024).feed(brotli.compress(TEXT)))
    with pytest.raises(DecodeError, match=r"ratio above 10:1"):
        list(Decoder("deflate", max_ratio=10).feed(zlib.compress(b"\0" * (4 << 20))))
    with pytest.raises(ValueError, match="no decoder"):
        Decoder("lzma")
