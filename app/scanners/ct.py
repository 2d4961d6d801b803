"""Subdomains from certificate transparency: a crt.sh-style JSON search (the URL is a setting).

The answer is hostile input like any other: size-capped, time-limited, parsed leniently. A source
that fails (no internet, rate limiting, garbage) raises CTError, which a scan reports as a warning.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx

from app.errors import BodyRefused, CTError, InvalidName
from app.net.body import read_whole
from app.net.names import normalise_domain
from app.settings import get_settings


def search_url(template: str, domain: str) -> str:
    return template.replace("{domain}", quote(domain, safe=".-"))


def names_from(entries: object, domain: str) -> list[str]:
    """Names under `domain` in crt.sh's JSON ([{"name_value": "a.x.com\\n*.x.com", "common_name": ...}])."""
    if not isinstance(entries, list):
        raise CTError("the CT answer is not a JSON list")
    found: dict[str, None] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        for key in ("name_value", "common_name"):
            value = entry.get(key)
            if not isinstance(value, str):
                continue
            for raw in value[:100_000].split("\n"):
                raw = raw.strip().lower().removeprefix("*.")
                try:
                    name = normalise_domain(raw)
                except InvalidName:
                    continue
                if name == domain or name.endswith("." + domain):
                    found.setdefault(name, None)
    return sorted(found)


async def subdomains(
    domain: str,
    *,
    url_template: str | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    user_agent: str | None = None,
) -> list[str]:
    settings = get_settings()
    url = search_url(url_template or settings.ct_url, domain)
    limit = max_bytes or settings.ct_max_bytes
    try:
        async with (
            httpx.AsyncClient(
                timeout=timeout or settings.ct_timeout_seconds,
                headers={"User-Agent": user_agent or settings.http_user_agent},
                follow_redirects=True,
                trust_env=False,
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise CTError(f"certificate transparency source answered HTTP {response.status_code} ({url})")
            body = await read_whole(response, limit)
    except BodyRefused as exc:
        raise CTError(f"certificate transparency answer refused ({url}): {exc}") from None
    except httpx.HTTPError as exc:
        raise CTError(f"certificate transparency source unreachable ({url}): {exc or type(exc).__name__}") from None
    try:
        return names_from(json.loads(body or b"[]"), domain)
    except ValueError:
        raise CTError(f"certificate transparency answer is not JSON ({url})") from None
