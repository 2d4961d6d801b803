"""Periodic work fired by Celery beat (with Redis up) or by the web process (in fallback).

These are plain Celery tasks, not jobs: a tick every few seconds must not fill the jobs table.
"""

from __future__ import annotations

from app.celery_app import celery_app


@celery_app.task(name="assetmon.scheduler_tick", ignore_result=True)
def scheduler_tick() -> None:
    from app.schedules import tick

    tick()
