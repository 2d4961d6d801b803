"""The Celery worker's entry point: `celery -A app.worker worker` (./start_worker.sh runs it).

Importing it gives the worker everything it runs: every job of the catalogue (app/tasks.py), the task
that runs one slice of a shared scan (app/jobs/slices.py), and beat's tick, which fires due schedules
and notifications. Ticks and slices are plain Celery tasks, not jobs: a tick every few seconds, or a
slice of someone else's job, must not fill the jobs table.
"""

from __future__ import annotations

import os
from typing import Any

from celery import signals

from app import tasks
from app.db import dispose_engines, ensure_migrated
from app.jobs import slices
from app.jobs.celery_app import celery_app
from app.monitor import scheduler
from app.recon import stages
from app.settings import get_settings

__all__ = ["celery_app", "tasks"]

TICK = "assetmon.scheduler_tick"


def _beat() -> dict[str, Any]:
    # Beat only ticks; schedules live in the database. The in-memory scheduler writes no schedule file.
    every = get_settings().scheduler_tick_seconds
    return {
        "beat_scheduler": "celery.beat:Scheduler",
        "beat_schedule": {
            "assetmon-scheduler-tick": {
                "task": TICK,
                "schedule": every,
                "options": {"queue": "default", "expires": max(1.0, every)},
            },
        },
    }


celery_app.add_defaults(_beat)
stages.all_stages()  # reads the recon stages: those that can be sliced register their slice runner


@celery_app.task(name=TICK, ignore_result=True)
def scheduler_tick() -> None:
    scheduler.tick()


@celery_app.task(name=slices.TASK, ignore_result=True)
def run_slice(chunk_id: int) -> str:
    return slices.run_chunk(chunk_id)


@signals.celeryd_init.connect
def _remember_node_name(sender: str | None = None, **_: object) -> None:
    # The node name (`w1@host`, from --hostname) names who ran what, e.g. which worker ran a scan's slice.
    if sender:
        os.environ["ASSETMON_NODE"] = str(sender)


@signals.worker_init.connect
def _migrate_on_worker_start(**_: object) -> None:
    ensure_migrated()


@signals.worker_process_init.connect
def _fresh_connections_in_child(**_: object) -> None:
    dispose_engines()
