"""Checks on text that users send, shared by the validators."""

from __future__ import annotations


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate: JSON can carry one ("\\ud800"), but it is not Unicode, so it
    can be neither stored nor sent anywhere."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)
