"""Celery configuration only. Tasks are registered from app.tasks through app.jobtask."""

from __future__ import annotations

import os

from celery import Celery, signals
from kombu import Queue

from app import celery_patches
from app.registry import QUEUES
from app.settings import get_settings

settings = get_settings()
celery_patches.apply()  # a Redis restart during a job must not stop the worker (see app/celery_patches.py)

celery_app = Celery(
    "assetmon", broker=settings.redis_url, backend=settings.redis_url, include=["app.tasks", "app.ticks", "app.chunks"]
)

_socket_options = {"socket_connect_timeout": 2, "socket_timeout": 10, "retry_on_timeout": False}

celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A job is acknowledged only after it ran; a worker killed mid-job gives it back to the queue.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=settings.job_soft_time_limit,
    task_time_limit=settings.job_time_limit,
    result_expires=settings.result_expires,
    task_track_started=True,
    task_send_sent_event=True,
    worker_send_task_events=True,
    task_default_queue="default",
    task_queues=[Queue(name) for name in QUEUES],
    # Fail fast when Redis is gone instead of blocking the caller; the dispatcher falls back.
    broker_connection_timeout=2,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    broker_transport_options={
        **_socket_options,
        # Longer than any job may run, so a long job is never handed to a second worker.
        "visibility_timeout": settings.job_time_limit + 300,
    },
    result_backend_transport_options=_socket_options,
    redis_socket_connect_timeout=2,
    redis_socket_timeout=10,
    result_backend_always_retry=False,
    worker_cancel_long_running_tasks_on_connection_loss=False,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
    # Beat only ticks; schedules live in the database. The in-memory scheduler writes no schedule file.
    beat_scheduler="celery.beat:Scheduler",
    beat_schedule={
        "assetmon-scheduler-tick": {
            "task": "assetmon.scheduler_tick",
            "schedule": settings.scheduler_tick_seconds,
            "options": {"queue": "default", "expires": max(1.0, settings.scheduler_tick_seconds)},
        },
    },
)


@signals.celeryd_init.connect
def _remember_node_name(sender: str | None = None, **_: object) -> None:
    # The node name (`w1@host`, from --hostname) names who ran what, e.g. which worker ran a scan's slice.
    if sender:
        os.environ["ASSETMON_NODE"] = str(sender)


@signals.worker_init.connect
def _migrate_on_worker_start(**_: object) -> None:
    from app.db import ensure_migrated

    ensure_migrated()


@signals.worker_process_init.connect
def _fresh_connections_in_child(**_: object) -> None:
    from app.db import dispose_engines

    dispose_engines()
