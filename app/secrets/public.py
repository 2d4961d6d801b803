"""Values that are public by design: keys every browser is sent (Mapbox `pk.` tokens, Stripe `pk_`
keys, reCAPTCHA site keys, Algolia search-only keys, Sentry DSN keys), which no rule, the generic ones
included, reports as a leak.

They are data, in the rule files: `[[public]]` tables with an `id`, a `description`, a `value` regex
the whole value must match, an optional `context` regex that must occur within CONTEXT_BYTES of it,
`action` ("quiet": no finding; "low": a finding of low confidence at most), and examples — `true`,
texts where the value is public (`{value}` stands for a generated one), `false`, texts where the same
shape is a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.errors import RuleError

ACTIONS = ("quiet", "low")
CONTEXT_BYTES = 200


@dataclass(frozen=True)
class PublicValue:
    id: str
    description: str
    value: re.Pattern[bytes]
    action: str
    context: re.Pattern[bytes] | None = None
    generate: str | None = None
    true_examples: tuple[str, ...] = field(default=())
    false_examples: tuple[str, ...] = field(default=())


def parse(raw: dict, source: str) -> PublicValue:
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9\-]{1,63}", entry_id):
        raise RuleError(f"{source}: a [[public]] table needs an id of lowercase letters, digits and dashes")
    action = raw.get("action", "quiet")
    if action not in ACTIONS:
        raise RuleError(f"public value {entry_id!r}: action must be one of {', '.join(ACTIONS)}")
    try:
        value = re.compile(str(raw["value"]).encode())
        context = re.compile(str(raw["context"]).encode(), re.IGNORECASE) if raw.get("context") else None
    except KeyError:
        raise RuleError(f"public value {entry_id!r}: 'value' is required") from None
    except re.error as exc:
        raise RuleError(f"public value {entry_id!r}: invalid regex: {exc}") from None
    examples = raw.get("examples", {})
    return PublicValue(
        id=entry_id,
        description=str(raw.get("description", "")),
        value=value,
        action=action,
        context=context,
        generate=raw.get("generate"),
        true_examples=tuple(examples.get("true", ())),
        false_examples=tuple(examples.get("false", ())),
    )


def verdict(entries: tuple[PublicValue, ...], value: bytes, buf: bytes, start: int, end: int) -> str | None:
    """ "quiet" or "low" when the value at buf[start:end] is public by design; None when it is not."""
    around = None
    for entry in entries:
        if not entry.value.fullmatch(value):
            continue
        if entry.context is not None:
            around = around if around is not None else buf[max(0, start - CONTEXT_BYTES) : end + CONTEXT_BYTES]
            if not entry.context.search(around):
                continue
        return entry.action
    return None
