"""Proofs of format: checks that a value's own structure passes, which random text almost never does.

A rule names one (`validate = "crc32-base62"`); a match that passes it is a finding of high
confidence, one that fails keeps the rule's own confidence (its prefix and shape still say what it is:
a documentation example, a hand-made test value, or a format we check wrongly).

crc32-base62   GitHub's token formats since 2021 and npm's: `prefix_` + random base62 characters + a
               6-character base62 CRC32 of the random part (github.blog, "Behind GitHub's new
               authentication token formats"; "Announcing npm's new access token format").
jwt            a JSON Web Token whose header and claims decode (app/secrets/webtokens.py). A value that
               does not decode is no token at all; one that decodes but is public by design (a
               Supabase anon key, a short-lived token) is no finding; the others say their claims.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable

from app.secrets import webtokens

BASE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_CHARS = 6


def _base62(number: int, width: int) -> bytes:
    digits = bytearray()
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return bytes(reversed(digits)).rjust(width, b"0")


def crc32_tail(random_part: bytes) -> bytes:
    """The 6-character checksum a token with this random part ends with."""
    return _base62(zlib.crc32(random_part), _CHECKSUM_CHARS)


def crc32_base62(value: bytes) -> bool:
    body = value.rpartition(b"_")[2]
    if len(body) <= _CHECKSUM_CHARS:
        return False
    return crc32_tail(body[:-_CHECKSUM_CHARS]) == body[-_CHECKSUM_CHARS:]


def complete_crc32_base62(value: str) -> str:
    """A fake token made valid: its last 6 characters replaced by the checksum of the rest."""
    prefix, _, body = value.rpartition("_")
    random_part = body[:-_CHECKSUM_CHARS].encode()
    return f"{prefix}_{random_part.decode()}{crc32_tail(random_part).decode()}"


def jwt(value: bytes) -> bool:
    return webtokens.decode(value) is not None


def jwt_is_no_finding(value: bytes) -> bool:
    token = webtokens.decode(value)
    return token is None or not webtokens.is_credential(token)


def jwt_details(value: bytes) -> str | None:
    token = webtokens.decode(value)
    return webtokens.describe(token) if token else None


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def complete_jwt(value: str) -> str:
    """A fake service-role token (ten years of life) made from generated random text: for tests."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    claims = _b64(
        {"iss": "assetmon-test", "ref": value[-20:], "role": "service_role", "iat": 1767225600, "exp": 2082758400}
    )
    return f"{header}.{claims}.{value.rpartition('.')[2]}"


PROOFS: dict[str, Callable[[bytes], bool]] = {"crc32-base62": crc32_base62, "jwt": jwt}
# Values that pass the shape but are no finding (public by design); and what a value says of itself,
# added to the finding's description.
NO_FINDING: dict[str, Callable[[bytes], bool]] = {"jwt": jwt_is_no_finding}
DETAILS: dict[str, Callable[[bytes], str | None]] = {"jwt": jwt_details}
# How tests and benchmarks turn a generated fake into one that passes the proof.
COMPLETE: dict[str, Callable[[str], str]] = {"crc32-base62": complete_crc32_base62, "jwt": complete_jwt}
