"""Database tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


FINISHED_STATES = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class Backend(StrEnum):
    celery = "celery"
    background = "background"
    eager = "eager"


class Job(SQLModel, table=True):
    """One unit of long work, whichever process runs it. The row is the truth about its state."""

    __table_args__ = (
        Index("ix_job_status_created", "status", "created_at"),
        Index("ix_job_name_created", "name", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    queue: str = Field(default="default", max_length=50)
    kwargs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    backend: str = Field(default=Backend.celery.value, max_length=20)
    status: str = Field(default=JobStatus.queued.value, max_length=20)
    progress: int = 0
    message: str = Field(default="", max_length=500)
    result: Any | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, max_length=4000)
    attempts: int = 0
    runs: int = 1
    cancel_requested: bool = False
    runner: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
