"""JSON API for jobs: trigger, inspect, list, log, cancel, requeue, queue counts."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from app.jobs import broker, dispatch, log_lines, registry, store
from app.models import JobStatus
from app.settings import QUEUES

router = APIRouter(prefix="/api/v1", tags=["jobs"])

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def checked_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise HTTPException(404, f"no job with id {job_id!r} (job ids are 32 hexadecimal characters)")
    return job_id


@router.get("/tasks")
def list_tasks() -> dict[str, Any]:
    """The tasks that can be triggered, with their queue and arguments."""
    return {
        "tasks": [
            {
                "name": spec.name,
                "queue": spec.queue,
                "description": spec.description,
                "arguments": spec.arguments.model_json_schema().get("properties", {}),
            }
            for spec in registry.all_tasks()
        ]
    }


@router.post("/jobs/trigger/{task_name}", status_code=202)
async def trigger(
    task_name: str,
    background: BackgroundTasks,
    kwargs: Annotated[dict[str, Any] | None, Body(description="Keyword arguments of the task")] = None,
) -> dict[str, Any]:
    """Queue a registered task. The body is a JSON object of its keyword arguments."""
    job = await run_in_threadpool(dispatch.submit, task_name, kwargs or {}, background=background)
    return {"job_id": job.id, "status": job.status, "backend": job.backend, "queue": job.queue, "name": job.name}


@router.get("/jobs/queues")
def queues() -> dict[str, Any]:
    """Jobs per queue and state, messages waiting in Redis, and the workers that consume each queue."""
    counts = store.queue_counts()
    status = broker.status()
    waiting = broker.queue_lengths(list(QUEUES)) if status.redis_ok else {q: None for q in QUEUES}
    result = {}
    for queue in sorted(set(QUEUES) | set(counts)):
        result[queue] = {
            "jobs": counts.get(queue, {s.value: 0 for s in JobStatus}),
            "broker_messages": waiting.get(queue),
            "workers": sorted(node for node, qs in status.workers.items() if queue in qs),
        }
    return {"mode": status.mode, "queues": result}


@router.get("/jobs")
def list_jobs(
    status: JobStatus | None = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    queue: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    if queue is not None and queue not in QUEUES:
        raise HTTPException(422, f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    rows = store.list_jobs(status=status.value if status else None, name=name, limit=limit, queue=queue)
    return {"jobs": [store.to_dict(job) for job in rows], "count": len(rows)}


@router.get("/jobs/{job_id}")
def get_job(job_id: str) -> dict[str, Any]:
    return store.to_dict(store.get_job(checked_job_id(job_id)))


@router.get("/jobs/{job_id}/log")
def get_log(
    job_id: str,
    after: Annotated[int, Query(ge=0, description="only lines after this line id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    """The job's log lines (stages, totals, warnings, which worker ran what), oldest first."""
    job = store.get_job(checked_job_id(job_id))
    return {"job_id": job.id, "lines": log_lines(job.id, after_id=after, limit=limit)}


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: str, terminate: bool = False) -> dict[str, Any]:
    """Cancel a queued job at once; ask a running job to stop at its next checkpoint.
    `?terminate=true` also revokes a running Celery task and kills its process."""
    return store.to_dict(dispatch.cancel(checked_job_id(job_id), terminate=terminate))


@router.post("/jobs/{job_id}/requeue", status_code=202)
def requeue(job_id: str, background: BackgroundTasks) -> dict[str, Any]:
    """Run a finished (succeeded, failed or cancelled) job again, with the same arguments."""
    return store.to_dict(dispatch.requeue(checked_job_id(job_id), background=background))
