"""Big pieces of work split into slices that several Celery workers run in parallel, merged once.

The job that owns a scan writes the slices (`scan_chunk` rows) and fans them out with a Celery
group; every worker that gets one claims it in the database before running it. The owner does
not wait idly: it claims and runs slices too, so a scan finishes with one worker, with twenty,
or when Redis lost the group's messages. The join lives in the database, not in a chord
counter in Redis: a slice whose runner stops heartbeating (a killed worker) is claimed again,
a result is stored only by the runner holding the slice, and the owner merges the stored
results exactly once, in slice order, so the merged result does not depend on who ran what.

What a slice is comes from the caller: `register(name, runner)` names how to run one slice (a recon
stage that can be sliced registers itself, see app/recon/stages/), and every worker runs slices
through the Celery task TASK, which the worker's entry point (app/worker.py) binds to `run_chunk`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import group
from sqlalchemy import delete, func, or_, update
from sqlmodel import col, select

from app.db import session_scope
from app.jobs.celery_app import celery_app
from app.jobs.context import current_job
from app.models import Job, JobStatus, ScanChunk, utcnow
from app.settings import get_settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
SliceRunner = Callable[[dict[str, Any], Progress | None], Awaitable[Any]]

TASK = "assetmon.scan_chunk"  # the Celery task that runs one slice on any worker
WAIT_SECONDS = 0.2  # how often the owner looks for finished or abandoned slices

_RUNNERS: dict[str, SliceRunner] = {}


def register(name: str, runner: SliceRunner) -> None:
    """How to run one slice of `name`: `async runner(payload, progress) -> JSON-able result`."""
    _RUNNERS[name] = runner


def runner_name() -> str:
    """Who runs a slice: the Celery node name (`w1@host`) in a worker, else the host; plus the pid."""
    node = current_job().worker or os.environ.get("ASSETMON_NODE") or socket.gethostname()
    return f"{node}:{os.getpid()}"


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def run_all(name: str, payloads: list[tuple[dict[str, Any], int]], progress: Progress | None = None) -> list[Any]:
    """Run the slices `(payload, size)` of stage `name`; their results in slice order.

    Inside a job run by a Celery worker the slices are shared with every worker on the job's queue;
    elsewhere (fallback, the CLI, tests) this process runs them one after another.
    """
    run = _RUNNERS[name]
    total = sum(size for _, size in payloads)
    job = current_job()
    if job.job_id is None or job.mode != "celery" or len(payloads) < 2:
        results, finished = [], 0
        for payload, size in payloads:
            results.append(await run(payload, _offset(progress, finished, total)))
            finished += size
        return results
    return await _Shared(job.job_id, name, payloads, progress, total).run()


def _offset(progress: Progress | None, before: int, total: int) -> Progress | None:
    if progress is None:
        return None
    return lambda done, _total: progress(before + done, total)


class _Shared:
    """One owner's view of a stage whose slices are shared with other workers."""

    def __init__(
        self, job_id: str, name: str, payloads: list[tuple[dict[str, Any], int]], progress: Progress | None, total: int
    ) -> None:
        self.job_id, self.name, self.payloads, self.progress, self.total = job_id, name, payloads, progress, total
        self.me = runner_name()

    async def run(self) -> list[Any]:
        pending = _prepare(self.job_id, self.name, self.payloads)
        queue = _job_queue(self.job_id)
        fanned = _fan_out(pending, queue)
        current_job().log(
            f"{self.name}: {len(self.payloads):,} slices shared with the workers on queue '{queue}'"
            if fanned
            else f"{self.name}: {len(self.payloads):,} slices, run here (could not hand them to other workers)"
        )
        stale_after = get_settings().job_stale_seconds
        while True:
            chunk = claim(self.job_id, self.name, self.me, stale_after)
            done, done_size = _done(self.job_id, self.name)
            if chunk is not None:
                await _run_claimed(chunk, self.me, _offset(self.progress, done_size, self.total))
                continue
            if done == len(self.payloads):
                break
            if self.progress is not None:
                self.progress(done_size, self.total)  # also a cancel checkpoint
            await asyncio.sleep(WAIT_SECONDS)
        return self._merge()

    def _merge(self) -> list[Any]:
        with session_scope() as session:
            rows = session.exec(
                select(ScanChunk)
                .where(ScanChunk.job_id == self.job_id, ScanChunk.stage == self.name)
                .order_by(col(ScanChunk.index))
            ).all()
            results = [row.result for row in rows]
            by_runner = Counter((row.runner or "?").rsplit(":", 1)[0] for row in rows)
            session.exec(delete(ScanChunk).where(ScanChunk.job_id == self.job_id, ScanChunk.stage == self.name))
        split = ", ".join(f"{count:,} by {who}" for who, count in sorted(by_runner.items()))
        current_job().log(f"{self.name}: {len(results):,} slices merged ({split})")
        return results


def _prepare(job_id: str, name: str, payloads: list[tuple[dict[str, Any], int]]) -> list[int]:
    """Write the slices (a retried job keeps the ones it already finished); the ids still to run."""
    with session_scope() as session:
        existing = {
            row.index: row
            for row in session.exec(select(ScanChunk).where(ScanChunk.job_id == job_id, ScanChunk.stage == name)).all()
        }
        for index, (payload, size) in enumerate(payloads):
            digest = _digest(payload)
            row = existing.pop(index, None)
            if row is not None and row.digest == digest:
                continue
            if row is not None:
                session.delete(row)
                session.flush()
            session.add(ScanChunk(job_id=job_id, stage=name, index=index, digest=digest, payload=payload, size=size))
        for row in existing.values():
            session.delete(row)
        session.flush()
        return list(
            session.exec(
                select(ScanChunk.id).where(
                    ScanChunk.job_id == job_id, ScanChunk.stage == name, ScanChunk.status != "done"
                )
            ).all()
        )


def _job_queue(job_id: str) -> str:
    with session_scope() as session:
        return session.exec(select(Job.queue).where(Job.id == job_id)).first() or "scans"


def _fan_out(chunk_ids: list[int], queue: str) -> bool:
    """A Celery group of the slices, on the job's own queue. False when the broker refused them."""
    if not chunk_ids:
        return True
    try:
        group(celery_app.signature(TASK, args=(chunk_id,), immutable=True) for chunk_id in chunk_ids).apply_async(
            queue=queue
        )
        return True
    except Exception as exc:  # Redis gone: this process runs them all
        log.warning("could not hand %d slices to other workers: %s", len(chunk_ids), exc)
        return False


def claim(job_id: str, name: str, runner: str, stale_after: float, chunk_id: int | None = None) -> ScanChunk | None:
    """Take one slice to run: a pending one, or one whose runner stopped heartbeating."""
    stale = utcnow() - timedelta(seconds=stale_after)
    claimable = or_(
        ScanChunk.status == "pending",
        (ScanChunk.status == "running") & (col(ScanChunk.heartbeat_at) < stale),
    )
    with session_scope() as session:
        query = select(ScanChunk).where(ScanChunk.job_id == job_id, ScanChunk.stage == name, claimable)
        if chunk_id is not None:
            query = query.where(ScanChunk.id == chunk_id)
        candidates = session.exec(query.order_by(col(ScanChunk.index)).limit(8)).all()
        for row in candidates:
            # Conditional on what we saw: of two claimers, exactly one changes the row.
            taken = session.exec(
                update(ScanChunk)
                .where(
                    ScanChunk.id == row.id,
                    ScanChunk.status == row.status,
                    ScanChunk.attempts == row.attempts,
                )
                .values(status="running", runner=runner, attempts=row.attempts + 1, heartbeat_at=utcnow())
            ).rowcount
            if taken == 1:
                session.commit()
                row.status, row.runner, row.attempts = "running", runner, row.attempts + 1
                return row
    return None


def _done(job_id: str, name: str) -> tuple[int, int]:
    """Slices of the stage done, and the probes in them."""
    with session_scope() as session:
        count, size = session.exec(
            select(func.count(), func.coalesce(func.sum(ScanChunk.size), 0)).where(
                ScanChunk.job_id == job_id, ScanChunk.stage == name, ScanChunk.status == "done"
            )
        ).one()
    return int(count), int(size)


@contextmanager
def _lease(chunk_id: int, runner: str) -> Iterator[None]:
    """Heartbeats for a slice while it runs, from a thread (the slice's own loop may be busy)."""
    stop = threading.Event()
    interval = get_settings().job_heartbeat_seconds

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with session_scope() as session:
                    session.exec(
                        update(ScanChunk)
                        .where(ScanChunk.id == chunk_id, ScanChunk.runner == runner, ScanChunk.status == "running")
                        .values(heartbeat_at=utcnow())
                    )
            except Exception as exc:  # the database hiccuped: the next beat tries again
                log.warning("heartbeat of slice %s failed: %s", chunk_id, exc)

    thread = threading.Thread(target=beat, name=f"chunk-{chunk_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


async def _run_claimed(chunk: ScanChunk, runner: str, progress: Progress | None) -> bool:
    """Run a claimed slice and store its result. False when another runner took it over meanwhile."""
    with _lease(chunk.id, runner):
        result = await _RUNNERS[chunk.stage](chunk.payload, progress)
    with session_scope() as session:
        stored = session.exec(
            update(ScanChunk)
            .where(ScanChunk.id == chunk.id, ScanChunk.runner == runner, ScanChunk.status == "running")
            .values(status="done", result=result, finished_at=utcnow())
        ).rowcount
    return stored == 1


def run_chunk(chunk_id: int) -> str:
    """Run one slice if it is still to do and its job still runs (what a worker does with a group member)."""
    with session_scope() as session:
        chunk = session.get(ScanChunk, chunk_id)
        job = session.get(Job, chunk.job_id) if chunk is not None else None
    if chunk is None or chunk.status == "done":
        return "already done"
    if job is None or job.status != JobStatus.running.value or job.cancel_requested:
        return "its scan is no longer running"
    if chunk.stage not in _RUNNERS:  # left to a worker that knows the stage (the owner does)
        log.error("slice %s: no runner registered for %r in this process", chunk_id, chunk.stage)
        return f"no runner for {chunk.stage!r} here"
    runner = runner_name()
    claimed = claim(chunk.job_id, chunk.stage, runner, get_settings().job_stale_seconds, chunk_id=chunk_id)
    if claimed is None:
        return "taken by another worker"
    stored = asyncio.run(_run_claimed(claimed, runner, None))
    return "done" if stored else "taken over by another worker"
