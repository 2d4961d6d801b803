"""JSON Web Tokens (RFC 7519): decode the header and the claims — never trust them, never verify the
signature — and tell a credential from a token that is public by design.

A signed token in a bundle is a credential when it grants something by itself: a privileged role
(Supabase's `service_role`, "admin"), or a long life (no expiry, or years of it). Supabase's `anon`
key and other public roles are meant to be in every browser; short-lived tokens in a build are stale.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.net.text import printable_line

PUBLIC_ROLES = {"anon", "anonymous", "public", "guest"}
PRIVILEGED = ("admin", "service_role", "service", "superuser", "root", "owner", "write", "all")
LONG_LIFE_SECONDS = 30 * 24 * 3600  # tokens that live longer than a month are kept like keys
SHOWN_CLAIMS = ("role", "roles", "scope", "iss", "sub", "aud", "exp")
MAX_PART_BYTES = 8192


@dataclass(frozen=True)
class WebToken:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def signed(self) -> bool:
        return str(self.header.get("alg", "")).lower() not in ("", "none")


def _part(text: bytes) -> dict[str, Any] | None:
    if len(text) > MAX_PART_BYTES:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):  # not base64url, not UTF-8, not JSON
        return None
    return value if isinstance(value, dict) else None


def decode(value: bytes) -> WebToken | None:
    """The header and claims of a compact JWS (`header.claims.signature`), or None."""
    parts = value.split(b".")
    if len(parts) != 3 or not parts[2]:
        return None
    header, claims = _part(parts[0]), _part(parts[1])
    if header is None or claims is None or "alg" not in header:
        return None
    return WebToken(header, claims)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_credential(token: WebToken) -> bool:
    if not token.signed:
        return False  # alg "none": anyone can make one, it proves nothing
    roles = token.claims.get("role", token.claims.get("roles", ""))
    named = " ".join(map(str, roles if isinstance(roles, list) else [roles])).lower()
    scope = str(token.claims.get("scope", "")).lower()
    if named and all(role in PUBLIC_ROLES for role in named.split()):
        return False
    if any(word in named or word in scope.split() for word in PRIVILEGED):
        return True
    expires, issued = _number(token.claims.get("exp")), _number(token.claims.get("iat"))
    if expires is None:
        return True  # never expires
    return issued is None or expires - issued > LONG_LIFE_SECONDS


def describe(token: WebToken) -> str:
    """What the token says of itself, for the finding's description: the algorithm and the claims that
    tell what it grants (values shortened; the signature is never shown)."""
    shown = []
    for name in SHOWN_CLAIMS:
        if name not in token.claims:
            continue
        value = token.claims[name]
        if name == "exp" and (seconds := _number(value)) is not None:
            try:
                value = datetime.fromtimestamp(seconds, UTC).date().isoformat()
            except (OverflowError, OSError, ValueError):
                value = "far future"
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        shown.append(f"{name}={printable_line(text, 60)}")
    alg = printable_line(str(token.header.get("alg")), 20)
    return f"{alg}; " + (", ".join(shown) if shown else "no registered claims")
