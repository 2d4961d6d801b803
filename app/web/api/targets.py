"""JSON API for targets: CRUD, run now, and importing assets a target already knows."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Response
from fastapi.concurrency import run_in_threadpool

from app.recon import inventory, scans, targets
from app.web.api import RowId, UnicodeOnly
from app.web.api.scans import started

router = APIRouter(prefix="/api/v1", tags=["recon"])


@router.post("/targets", status_code=201)
def create_target(body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"name", "domains": [...], "cidrs"?, "urls"?, "scope"?: {"include", "exclude"}, "scan_options"?, "schedule"?}"""
    return targets.to_dict(targets.create(body))


@router.get("/targets")
def list_targets() -> dict[str, Any]:
    rows = [targets.to_dict(t) for t in targets.list_targets()]
    return {"targets": rows, "count": len(rows)}


@router.get("/targets/{target_id}")
def get_target(target_id: RowId) -> dict[str, Any]:
    return targets.to_dict(targets.get(target_id))


@router.patch("/targets/{target_id}")
def update_target(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """Change some fields; the whole target is validated again."""
    return targets.to_dict(targets.update(target_id, body))


@router.put("/targets/{target_id}")
def replace_target(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    return targets.to_dict(targets.update(target_id, body))


@router.delete("/targets/{target_id}", status_code=204)
def delete_target(target_id: RowId) -> Response:
    targets.delete(target_id)
    return Response(status_code=204)


@router.post("/jobs/scheduled/{target_id}/run", status_code=202, tags=["monitoring"])
@router.post("/targets/{target_id}/run", status_code=202, tags=["monitoring"])
async def run_now(target_id: RowId, background: BackgroundTasks) -> dict[str, Any]:
    """Scan the target now (409 while one of its scans is queued or running)."""
    targets.get(target_id)
    return started(await run_in_threadpool(scans.create, str(target_id), None, None, background, "manual"))


@router.post("/targets/{target_id}/import", tags=["monitoring"])
def import_known(target_id: RowId, body: Annotated[dict[str, Any], Body(), UnicodeOnly]) -> dict[str, Any]:
    """{"subdomains": [...], "hosts": [...]}: already-known assets; incremental scans skip them."""
    return inventory.import_known(target_id, body)
