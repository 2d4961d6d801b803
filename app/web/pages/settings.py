"""The Settings page: notification channels (with a test message), schedules, users, API tokens and
the audit log. Admins change things; viewers see them (never a token or a channel's secret)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse

from app.accounts import audit, tokens
from app.accounts import users as accounts
from app.errors import AccountError, ScheduleError, TargetError
from app.jobs import health_summary
from app.models import Role
from app.monitor import scheduler
from app.monitor.notify import KINDS as CHANNEL_KINDS
from app.monitor.notify import SEVERITIES, ChannelError, channels, outbox
from app.recon import targets
from app.web.api import RowId
from app.web.auth import client_ip, require_admin
from app.web.templating import templates

router = APIRouter(include_in_schema=False)


def _users() -> dict[str, Any]:
    return {"users": accounts.list_users(), "roles": accounts.ROLES}


def _tokens() -> dict[str, Any]:
    return {"tokens": tokens.list_tokens(), "roles": accounts.ROLES}


def _channels() -> dict[str, Any]:
    rows = [channels.to_dict(c) for c in channels.list_channels()]
    recent = outbox.describe(outbox.list_deliveries(limit=10))
    return {"channels": rows, "kinds": CHANNEL_KINDS, "severities": SEVERITIES, "deliveries": recent}


def _schedules() -> dict[str, Any]:
    return {"targets": [targets.to_dict(t) for t in targets.list_targets()]}


def _section(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, f"_settings_{name}.html", context, status_code=status_code)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request) -> HTMLResponse:
    context = _users() | _tokens() | _channels() | _schedules()
    context |= {"health": health_summary(), "audit": audit.recent(50), "roles": accounts.ROLES}
    return templates.TemplateResponse(request, "settings.html", context)


# --- users -------------------------------------------------------------------------------------------


def _user_action(request: Request, action, *args, done: str = "") -> HTMLResponse:
    try:
        action(*args)
    except AccountError as exc:
        return _section(request, "users", _users() | {"error": str(exc)}, exc.status_code)
    return _section(request, "users", _users() | {"done": done})


@router.post("/ui/settings/users", response_class=HTMLResponse)
def add_user(
    request: Request,
    username: str = Form(default="", max_length=200),
    password: str = Form(default="", max_length=2000),
    role: str = Form(default=Role.viewer.value, max_length=20),
) -> HTMLResponse:
    admin = require_admin(request)

    def create() -> None:
        account = accounts.create_user(username, password, role)
        audit.record(admin.username, "user.create", account.username, client_ip(request), role=account.role)

    return _user_action(request, create, done=f"Added {username.strip()}.")


@router.post("/ui/settings/users/{username}/role", response_class=HTMLResponse)
def change_role(request: Request, username: str, role: str = Form(default="", max_length=20)) -> HTMLResponse:
    admin = require_admin(request)

    def change() -> None:
        accounts.set_role(username, role)
        audit.record(admin.username, "user.role", username, client_ip(request), role=role)

    return _user_action(request, change, done=f"{username} is now {role}.")


@router.post("/ui/settings/users/{username}/password", response_class=HTMLResponse)
def reset_password(request: Request, username: str, password: str = Form(default="", max_length=2000)) -> HTMLResponse:
    admin = require_admin(request)

    def change() -> None:
        accounts.set_password(username, password)
        audit.record(admin.username, "user.password", username, client_ip(request))

    return _user_action(request, change, done=f"Password of {username} changed; their sessions were ended.")


@router.post("/ui/settings/users/{username}/delete", response_class=HTMLResponse)
def delete_user(request: Request, username: str) -> HTMLResponse:
    admin = require_admin(request)

    def remove() -> None:
        if username.lower() == admin.username.lower():
            raise AccountError("you cannot delete your own account")
        accounts.delete_user(username)
        audit.record(admin.username, "user.delete", username, client_ip(request))

    return _user_action(request, remove, done=f"Deleted {username}.")


# --- API tokens --------------------------------------------------------------------------------------


@router.post("/ui/settings/tokens", response_class=HTMLResponse)
def add_token(
    request: Request,
    name: str = Form(default="", max_length=200),
    role: str = Form(default=Role.viewer.value, max_length=20),
) -> HTMLResponse:
    admin = require_admin(request)
    try:
        info, token = tokens.create(name, role, admin.user_id)
    except AccountError as exc:
        return _section(request, "tokens", _tokens() | {"error": str(exc)}, 422)
    audit.record(admin.username, "token.create", info["name"], client_ip(request), role=info["role"])
    return _section(request, "tokens", _tokens() | {"new_token": token, "new_name": info["name"]})


@router.post("/ui/settings/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(request: Request, token_id: RowId) -> HTMLResponse:
    admin = require_admin(request)
    try:
        tokens.revoke(token_id)
    except AccountError as exc:
        return _section(request, "tokens", _tokens() | {"error": str(exc)}, exc.status_code)
    audit.record(admin.username, "token.revoke", str(token_id), client_ip(request))
    return _section(request, "tokens", _tokens() | {"done": "Token revoked."})


# --- notification channels ---------------------------------------------------------------------------


@router.post("/ui/settings/channels", response_class=HTMLResponse)
def add_channel(
    request: Request,
    kind: str = Form(default="", max_length=20),
    url: str = Form(default="", max_length=4096),
    min_severity: str = Form(default="info", max_length=20),
    events: str = Form(default="", max_length=2000),
    secret: str = Form(default="", max_length=600),
) -> HTMLResponse:
    admin = require_admin(request)
    body: dict[str, Any] = {"kind": kind, "url": url, "min_severity": min_severity}
    body["events"] = [e.strip() for e in events.replace("\n", ",").split(",") if e.strip()]
    if secret:
        body["secret"] = secret
    try:
        channel = channels.create(body)
    except ChannelError as exc:
        context = _channels() | {
            "error": str(exc),
            "form": {"kind": kind, "min_severity": min_severity, "events": events},
        }
        return _section(request, "channels", context, 422)
    audit.record(admin.username, "channel.create", f"{channel.kind} #{channel.id}", client_ip(request))
    return _section(request, "channels", _channels() | {"done": f"Added {channel.kind} channel #{channel.id}."})


@router.post("/ui/settings/channels/{channel_id}/delete", response_class=HTMLResponse)
def delete_channel(request: Request, channel_id: RowId) -> HTMLResponse:
    admin = require_admin(request)
    try:
        channels.delete(channel_id)
    except ChannelError as exc:
        return _section(request, "channels", _channels() | {"error": str(exc)}, exc.status_code)
    audit.record(admin.username, "channel.delete", f"#{channel_id}", client_ip(request))
    return _section(request, "channels", _channels() | {"done": f"Deleted channel #{channel_id}."})


@router.post("/ui/settings/channels/{channel_id}/test", response_class=HTMLResponse)
def test_channel(request: Request, channel_id: RowId, background: BackgroundTasks) -> HTMLResponse:
    require_admin(request)
    try:
        delivery = outbox.send_test(channel_id)
    except ChannelError as exc:
        return _section(request, "channels", _channels() | {"error": str(exc)}, exc.status_code)
    background.add_task(outbox.deliver, [delivery.id])
    done = f"Test message queued for channel #{channel_id}; its delivery shows below in a moment."
    return _section(request, "channels", _channels() | {"done": done})


@router.get("/ui/settings/channels", response_class=HTMLResponse)
def channels_section(request: Request) -> HTMLResponse:
    return _section(request, "channels", _channels())


# --- schedules ---------------------------------------------------------------------------------------


@router.post("/ui/settings/schedules/{target_id}", response_class=HTMLResponse)
def set_schedule(
    request: Request,
    target_id: RowId,
    mode: str = Form(default="none", max_length=10),
    every_minutes: str = Form(default="", max_length=20),
    cron: str = Form(default="", max_length=200),
) -> HTMLResponse:
    admin = require_admin(request)
    try:
        schedule: dict[str, Any] | None
        if mode == "every":
            try:
                schedule = {"every_seconds": int(float(every_minutes) * 60)}
            except ValueError:
                raise ScheduleError("every: a number of minutes") from None
        elif mode == "cron":
            schedule = {"cron": cron.strip()}
        else:
            schedule = None
        target = scheduler.set_schedule(target_id, schedule)
    except (ScheduleError, TargetError) as exc:
        submitted = {"mode": mode, "every_minutes": every_minutes, "cron": cron}
        context = _schedules() | {"error": str(exc), "error_target": target_id, "submitted": submitted}
        return _section(request, "schedules", context, getattr(exc, "status_code", 422))
    audit.record(admin.username, "schedule.set", target.name, client_ip(request), schedule=schedule)
    return _section(request, "schedules", _schedules() | {"done": f"Schedule of {target.name} saved."})
