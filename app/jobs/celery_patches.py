"""Work-arounds for bugs in Celery's libraries that stop a worker; applied when app.jobs.celery_app is imported.

kombu (5.7) with Redis: when Redis goes away while a task runs (a Redis restart, a dropped connection),
Celery tears the broker connection down and then still uses that connection's channel twice: to give back
the running task's unacknowledged message, and to acknowledge it once the task finishes. kombu then
raises AttributeError (the channel's transport is gone) instead of a connection error, and Celery, which
only tolerates connection errors there, stops the worker with "Unrecoverable error". Raising the
connection error instead lets Celery do what it means to: ignore the failed give-back, log the failed
acknowledgement ("Couldn't ack"), reconnect and go on consuming.

Nothing is lost or run twice: a message that was neither given back nor acknowledged is redelivered by
Redis after the visibility timeout if Redis kept it, and the job row decides (a finished job is not run
again); if Redis lost it, the reaper (app/jobs/recovery.py) re-runs or re-publishes the job.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    original = kombu_redis.Channel._connparams

    def _connparams(self, asynchronous: bool = False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("the broker connection of this channel was closed (Redis went away)")
        return original(self, asynchronous=asynchronous)

    kombu_redis.Channel._connparams = _connparams
    _APPLIED = True
