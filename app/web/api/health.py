"""Liveness and mode: GET /healthz."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from app.jobs import health_summary

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Mode (celery or fallback), Redis, workers and database; never waits on a slow probe."""
    return await run_in_threadpool(health_summary)
