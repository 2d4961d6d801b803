"""Who is asking: an account as the rest of AssetMon sees it, and how secrets that prove it are stored.

Session cookies and API tokens are random and long, so a plain SHA-256 is what is stored of them; their
"last seen" time is written at most every TOUCH_EVERY, so reading a page is not a database write.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from app.models import Role

TOUCH_EVERY = timedelta(minutes=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin.value
