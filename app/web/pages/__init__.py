"""The server-rendered pages (Jinja2 + htmx), one file per page family. Thin: every action calls the same
functions as the JSON API; what changes on its own is refreshed by htmx fragments under /ui/."""
