"""JSON API for who is signed in, user accounts, API tokens and the audit log (admins manage them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from app.accounts import audit, tokens
from app.accounts import users as accounts
from app.errors import AccountError
from app.web.api import RowId
from app.web.auth import Principal, client_ip, current_user, require_admin

router = APIRouter(prefix="/api/v1", tags=["access"])
Admin = Annotated[Principal, Depends(require_admin)]


class NewUser(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=accounts.MAX_PASSWORD)
    role: str = "viewer"


class UserChange(BaseModel):
    role: str | None = None
    password: str | None = Field(default=None, max_length=accounts.MAX_PASSWORD)


class NewToken(BaseModel):
    name: str = Field(max_length=100)
    role: str = "viewer"


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    """Who this request is authenticated as."""
    user = current_user(request)
    assert user is not None  # the middleware lets no anonymous request get here
    return {"username": user.username, "role": user.role, "via": user.via}


@router.get("/users")
def list_users(_: Admin) -> dict[str, Any]:
    rows = accounts.list_users()
    return {"users": rows, "count": len(rows)}


@router.post("/users", status_code=201)
def create_user(body: NewUser, request: Request, admin: Admin) -> dict[str, Any]:
    account = accounts.create_user(body.username, body.password, body.role)
    audit.record(admin.username, "user.create", account.username, client_ip(request), role=account.role)
    return {"id": account.id, "username": account.username, "role": account.role}


@router.patch("/users/{username}")
def change_user(username: str, body: UserChange, request: Request, admin: Admin) -> dict[str, Any]:
    """{"role"?: "admin"|"viewer", "password"?: "..."} (a new password signs the user's browsers out)."""
    if body.role is None and body.password is None:
        raise AccountError('send {"role": ...} and/or {"password": ...}')
    if body.password is not None:
        accounts.set_password(username, body.password)
        audit.record(admin.username, "user.password", username, client_ip(request))
    if body.role is not None:
        account = accounts.set_role(username, body.role)
        audit.record(admin.username, "user.role", username, client_ip(request), role=account.role)
    return next(u for u in accounts.list_users() if u["username"].lower() == username.lower())


@router.delete("/users/{username}", status_code=204)
def delete_user(username: str, request: Request, admin: Admin) -> Response:
    accounts.delete_user(username)
    audit.record(admin.username, "user.delete", username, client_ip(request))
    return Response(status_code=204)


@router.get("/tokens")
def list_tokens(_: Admin) -> dict[str, Any]:
    rows = tokens.list_tokens()
    return {"tokens": rows, "count": len(rows)}


@router.post("/tokens", status_code=201)
def create_token(body: NewToken, request: Request, admin: Admin) -> dict[str, Any]:
    """The answer holds the token itself; it is not shown again."""
    info, token = tokens.create(body.name, body.role, admin.user_id)
    audit.record(admin.username, "token.create", info["name"], client_ip(request), role=info["role"])
    return info | {"token": token}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: RowId, request: Request, admin: Admin) -> Response:
    tokens.revoke(token_id)
    audit.record(admin.username, "token.revoke", str(token_id), client_ip(request))
    return Response(status_code=204)


@router.get("/audit")
def audit_log(
    _: Admin,
    action: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = audit.recent(limit, action)
    return {"entries": rows, "count": len(rows)}
