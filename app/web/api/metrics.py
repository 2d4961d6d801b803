"""GET /metrics: Prometheus text format, computed from the database and Redis at scrape time."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.monitor.metrics import exposition

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics() -> Response:
    # A plain `def`: FastAPI runs it in the thread pool, so the database queries never block the event loop.
    body, content_type = exposition()
    return Response(body, media_type=content_type)
