"""Jobs: long work recorded as rows, run by a Celery worker, in the web process's fallback pool, or eagerly.

    from app.jobs import current_job, job

    @job(queue="scans", idempotent=True)
    def scan_target(target_id: int) -> dict:
        current_job().progress(50, "half way")       # also where a cancel stops it
        ...

    handle = scan_target.delay(target_id=1)          # a job row, then Celery or the fallback pool
    handle.get(timeout=60)

By name, for callers that must not import the job catalogue (app/tasks.py): `submit`, `cancel`,
`requeue`; the rows: `get_job`, `list_jobs`, `to_dict`, `queue_counts`; a job's log: `log_lines`,
`log_tail`; where jobs run now: `health_summary`. The modules behind this face, one job each:
store (rows and states), log, context (a running job), registry, task (`@job`), dispatch, broker,
fallback, runner, recovery, slices (one job shared by many workers), diskspace, health, celery_app.
"""

from app.jobs.context import JobContext, current_job
from app.jobs.dispatch import cancel, requeue, submit
from app.jobs.health import health as health_summary
from app.jobs.log import lines as log_lines
from app.jobs.log import tail as log_tail
from app.jobs.store import get_job, list_jobs, queue_counts, to_dict
from app.jobs.task import JobHandle, JobTask, job

__all__ = [
    "JobContext",
    "JobHandle",
    "JobTask",
    "cancel",
    "current_job",
    "get_job",
    "health_summary",
    "job",
    "list_jobs",
    "log_lines",
    "log_tail",
    "queue_counts",
    "requeue",
    "submit",
    "to_dict",
]
