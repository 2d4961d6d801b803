"""The Celery app, configuration only.

Jobs become Celery tasks when they are registered (app/jobs/task.py); the worker's entry point
(app/worker.py) imports the job catalogue and adds the slice task, beat's tick and the worker signals.

The configuration is read from the settings when Celery first needs it, not when this module is
imported: a bad `.env` then fails where it can be reported (the CLI names the variable), and importing
the job machinery reads no settings.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from app.jobs import celery_patches
from app.settings import QUEUES, get_settings

celery_patches.apply()  # a Redis restart during a job must not stop the worker (see celery_patches.py)


def _configuration() -> dict[str, Any]:
    settings = get_settings()
    socket_options = {"socket_connect_timeout": 2, "socket_timeout": 10, "retry_on_timeout": False}
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # A job is acknowledged only after it ran; a worker killed mid-job gives it back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.job_soft_time_limit,
        "task_time_limit": settings.job_time_limit,
        "result_expires": settings.result_expires,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_default_queue": "default",
        "task_queues": [Queue(name) for name in QUEUES],
        # Fail fast when Redis is gone instead of blocking the caller; the dispatcher falls back.
        "broker_connection_timeout": 2,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": {
            **socket_options,
            # Longer than any job may run, so a long job is never handed to a second worker.
            "visibility_timeout": settings.job_time_limit + 300,
        },
        "result_backend_transport_options": socket_options,
        "redis_socket_connect_timeout": 2,
        "redis_socket_timeout": 10,
        "result_backend_always_retry": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
    }


celery_app = Celery("assetmon")
celery_app.add_defaults(_configuration)  # a callable: evaluated on first use
