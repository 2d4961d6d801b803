"""Alembic migrations of the database schema (env.py reads the tables from app.models)."""
