"""The database layer on SQLite and PostgreSQL (run the suite with --db postgres for the latter)."""

from __future__ import annotations

from sqlmodel import select

from app.db import get_engine, session_scope
from app.models import JobLog


def test_hostile_text_with_nul_characters_is_stored(settings_env):
    # PostgreSQL refuses NUL in text; scanned content may carry it and must not fail a scan.
    with session_scope() as session:
        session.add(JobLog(job_id="a" * 32, message="title\x00<script>\x00"))
    with session_scope() as session:
        [row] = session.exec(select(JobLog)).all()
    expected = "title<script>" if get_engine().dialect.name == "postgresql" else "title\x00<script>\x00"
    assert row.message == expected


def test_database_url_is_read_as_psycopg(monkeypatch):
    from app.settings import Settings

    for given in ("postgres://u:p@db:5432/am", "postgresql://u:p@db:5432/am", "postgresql+psycopg://u:p@db:5432/am"):
        assert Settings(database_url=given).db_url == "postgresql+psycopg://u:p@db:5432/am"
    for bad, needle in (("mysql://u@db/am", "unsupported database 'mysql'"), ("db:5432", "must look like")):
        try:
            Settings(database_url=bad)
        except ValueError as exc:
            assert needle in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
