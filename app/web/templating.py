"""The page machinery every page family shares: the Jinja2 templates, and the guard of htmx-only actions."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from app.settings import PROJECT_ROOT

TEMPLATES_DIR = PROJECT_ROOT / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def require_htmx(request: Request) -> None:
    # These endpoints answer HTML fragments for htmx (which sends this header); scripts use the
    # JSON API. A cross-site form cannot send it either: one more layer beside the CSRF token.
    if request.headers.get("HX-Request") != "true":
        raise HTTPException(403, "this action must be sent from the AssetMon page")
