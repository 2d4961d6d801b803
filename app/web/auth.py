"""Who is asking: the signed-in user (session cookie) or an API token (bearer), and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, Request


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    via: str  # "session" | "token"
    user_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def current_user(request: Request) -> Principal | None:
    return getattr(request.state, "user", None)


def require_admin(request: Request) -> Principal:
    """For actions only an admin may take (revealing secrets, settings, triage); 403 for anyone else."""
    user = current_user(request)
    if user is None:
        raise HTTPException(401, "sign in first")
    if not user.is_admin:
        raise HTTPException(403, "only an admin can do this")
    return user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""
