"""`assetmon users` and `assetmon tokens`: accounts and API tokens from the command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.accounts import audit, tokens
from app.accounts import users as accounts
from app.cli.common import err, fail, out, print_json
from app.cli.storage import prepare_db
from app.errors import AccountError

users_app = typer.Typer(help="User accounts (roles: admin, viewer).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for scripts (Authorization: Bearer ...).", no_args_is_help=True)

RoleOption = Annotated[str, typer.Option("--role", help="admin or viewer.")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _account_call(action, *args):
    prepare_db()
    try:
        return action(*args)
    except AccountError as exc:
        fail(str(exc))


@users_app.command("create")
def users_create(
    username: str,
    role: RoleOption = "admin",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (one line).")
    ] = False,
) -> None:
    """Create a user; asks for the password (or reads it from standard input)."""
    _account_call(accounts.check_username, username)
    _account_call(accounts.check_role, role)
    password = _read_password(password_stdin)
    account = _account_call(accounts.create_user, username, password, role)
    audit.record("cli", "user.create", account.username, role=account.role)
    out.print(f"created {escape(account.role)} {escape(account.username)!r}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List users."""
    rows = _account_call(accounts.list_users)
    if as_json:
        print_json(rows)
        return
    table = Table("user", "role", "created", "last sign-in")
    for row in rows:
        table.add_row(escape(row["username"]), row["role"], row["created_at"][:19], (row["last_login_at"] or "-")[:19])
    out.print(table)


@users_app.command("set-password")
def users_set_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read it from standard input.")] = False,
) -> None:
    """Change a user's password (signs out their browsers)."""
    _account_call(accounts.check_username, username)
    password = _read_password(password_stdin)
    _account_call(accounts.set_password, username, password)
    audit.record("cli", "user.password", username)
    out.print(f"password of {escape(username)!r} changed")


@users_app.command("set-role")
def users_set_role(username: str, role: Annotated[str, typer.Argument(help="admin or viewer")]) -> None:
    """Make a user an admin or a viewer."""
    account = _account_call(accounts.set_role, username, role)
    audit.record("cli", "user.role", account.username, role=account.role)
    out.print(f"{escape(account.username)!r} is now {account.role}")


@users_app.command("delete")
def users_delete(username: str) -> None:
    """Delete a user (not the last admin)."""
    _account_call(accounts.delete_user, username)
    audit.record("cli", "user.delete", username)
    out.print(f"deleted {escape(username)!r}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for, e.g. 'ci' or 'grafana'.")],
    role: RoleOption = "viewer",
) -> None:
    """Create an API token and print it (only this once)."""
    info, token = _account_call(tokens.create, name, role)
    audit.record("cli", "token.create", info["name"], role=info["role"])
    err.print(f"API token {escape(info['name'])!r} ({info['role']}); it is shown only now:")
    sys.stdout.write(token + "\n")


@tokens_app.command("list")
def tokens_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List active API tokens (never the tokens themselves)."""
    rows = _account_call(tokens.list_tokens)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "role", "starts with", "created", "last used")
    for row in rows:
        table.add_row(
            str(row["id"]),
            escape(row["name"]),
            row["role"],
            row["prefix"] + "…",
            row["created_at"][:19],
            (row["last_used_at"] or "-")[:19],
        )
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token by id."""
    _account_call(tokens.revoke, token_id)
    audit.record("cli", "token.revoke", str(token_id))
    out.print(f"token {token_id} revoked")
