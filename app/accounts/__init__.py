"""Accounts: who may use AssetMon, how they prove it, and what they did.

users.py      accounts with argon2 password hashes and roles (admin, viewer); sign-in with
              throttling; the first admin (ADMIN_PASSWORD, the setup page, or the CLI)
sessions.py   browser sessions: a random cookie, stored only as its SHA-256, with a CSRF token
tokens.py     API tokens (Authorization: Bearer), shown once, stored as SHA-256, revocable
audit.py      the audit log: sign-ins, reveals, triage, changes to settings and accounts
identity.py   what the others share: `Account`, the token digest
"""

from app.accounts import audit, sessions, tokens, users
from app.accounts.identity import Account

__all__ = ["Account", "audit", "sessions", "tokens", "users"]
