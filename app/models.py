"""Database tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Integer ids are 32-bit in PostgreSQL (64-bit in SQLite): a bigger number names no row, and the database
# refuses to even compare a column with it, so callers bound ids before they reach a query.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (a naive one is UTC: that is how every time is stored)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """A stored time for JSON: ISO 8601 with its UTC offset, or None."""
    return aware(value).isoformat() if value is not None else None


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
    retries: int = 0  # re-runs after transient errors
    cancel_requested: bool = False
    runner: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None


class SecretFinding(SQLModel, table=True):
    """One secret on one asset (host), however often and wherever it was seen."""

    __tablename__ = "secret_finding"
    __table_args__ = (
        UniqueConstraint("asset", "fingerprint", name="uq_secret_asset_fingerprint"),
        Index("ix_secret_last_seen", "last_seen"),
    )

    id: int | None = Field(default=None, primary_key=True)
    asset: str = Field(max_length=255, index=True)
    fingerprint: str = Field(max_length=64)
    rule: str = Field(max_length=100)
    description: str = Field(max_length=300)
    severity: str = Field(max_length=20)
    confidence: str = Field(max_length=20)
    redacted: str = Field(max_length=100)
    # The full value, shown only on an explicit reveal. Protect the database like the secrets it holds.
    value: str = Field(sa_column=Column(Text, nullable=False))
    url: str = Field(max_length=2048)  # where it was first seen
    line: int = 0
    column: int = 0
    context: str = Field(default="", max_length=4000)  # redacted
    sightings: int = 0
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    first_job_id: str | None = Field(default=None, max_length=32)
    last_job_id: str | None = Field(default=None, max_length=32)
    # A live check with the provider, when someone asked for one (app/secrets/verify.py).
    verification: str = Field(default="", max_length=20)  # "", verified, invalid, unknown
    verification_detail: str = Field(default="", max_length=300)
    verified_at: datetime | None = None


class SecretSighting(SQLModel, table=True):
    """Where a secret was found by one job: the file or URL, byte offsets, line and column."""

    __tablename__ = "secret_sighting"
    __table_args__ = (
        UniqueConstraint("finding_id", "job_id", "url", "start", name="uq_sighting_place"),
        Index("ix_sighting_job", "job_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = Field(foreign_key="secret_finding.id", ondelete="CASCADE")
    job_id: str | None = Field(default=None, max_length=32)
    url: str = Field(max_length=2048)
    start: int
    end: int
    line: int
    column: int
    source: str | None = Field(default=None, max_length=1000)  # original file, for a source map
    source_line: int | None = None
    context: str = Field(default="", max_length=4000)  # redacted
    seen_at: datetime = Field(default_factory=utcnow)


class Target(SQLModel, table=True):
    """What an organisation owns: root domains, networks and URLs, with include/exclude rules."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cidrs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scope: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    scan_options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    schedule: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    next_run_at: datetime | None = Field(default=None, index=True)  # when the schedule fires next
    last_run_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Scan(SQLModel, table=True):
    """One recon scan of a target. Its state is its job's; the scan keeps the stage and the results."""

    __table_args__ = (Index("ix_scan_target_created", "target_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=32)
    target_id: int | None = Field(default=None, foreign_key="target.id", ondelete="SET NULL")
    target: str = Field(max_length=300)  # the target's name, or what was typed for a quick scan
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # the scope
    job_id: str | None = Field(default=None, max_length=32, index=True)
    modules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stage: str = Field(default="", max_length=20)
    counts: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Event(SQLModel, table=True):
    """Something that changed on a target between two scans (or a baseline): the timeline's rows."""

    __table_args__ = (
        Index("ix_event_target_created", "target_id", "created_at"),
        Index("ix_event_type_created", "type", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target_id: int | None = Field(default=None, foreign_key="target.id", ondelete="CASCADE")
    scan_id: str | None = Field(default=None, max_length=32)
    type: str = Field(max_length=50)
    severity: str = Field(default="info", max_length=20)
    summary: str = Field(max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Observation(SQLModel, table=True):
    """What a target's scans have seen of one thing (a name, a port, a service...): its last state and
    how many successful scans in a row have missed it, so one dropped packet does not make it "gone"."""

    __table_args__ = (
        UniqueConstraint("target_id", "kind", "key", name="uq_observation"),
        # A target's tabs: present rows of one kind, counted and paged by key or by last change.
        Index("ix_observation_tab_key", "target_id", "kind", "present", "key"),
        Index("ix_observation_tab_updated", "target_id", "kind", "present", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="target.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)
    key: str = Field(max_length=1000)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    present: bool = True
    missing_runs: int = 0
    first_scan_id: str | None = Field(default=None, max_length=32)
    last_scan_id: str | None = Field(default=None, max_length=32)
    updated_at: datetime = Field(default_factory=utcnow)


class Channel(SQLModel, table=True):
    """Where events are sent: a webhook, Slack, Discord, Telegram or e-mail, with its filters."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    url: str = Field(max_length=2048)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # [] = all types
    min_severity: str = Field(default="info", max_length=20)
    secret: str | None = Field(default=None, max_length=500)  # HMAC key for webhooks
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One event for one channel: an outbox row that the notifier sends, retries with backoff, and closes."""

    __table_args__ = (
        UniqueConstraint("channel_id", "event_id", name="uq_delivery"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", ondelete="CASCADE")
    event_id: int | None = Field(default=None, foreign_key="event.id", ondelete="CASCADE")  # None: a test message
    status: str = Field(default="pending", max_length=20)  # pending | sending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryAttempt(SQLModel, table=True):
    """The log of every attempt: when, what came back, what went wrong."""

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", ondelete="CASCADE", index=True)
    attempt: int
    ok: bool
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=2000)
    seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


class Role(StrEnum):
    admin = "admin"  # everything, including revealing secrets and changing settings
    viewer = "viewer"  # reads everything but secret values; changes nothing


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(default=Role.viewer.value, max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class UserSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "user_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie value
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE", index=True)
    csrf_token: str = Field(max_length=64)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


class ApiToken(SQLModel, table=True):
    """A bearer token for the API and scripts. Shown once at creation; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # the first characters, to tell tokens apart
    role: str = Field(default=Role.viewer.value, max_length=20)
    user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins, counted per address and per user name to slow down password guessing."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_ip_at", "ip", "at"), Index("ix_login_failure_user_at", "username", "at"))

    id: int | None = Field(default=None, primary_key=True)
    ip: str = Field(max_length=64)
    username: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Who did what that matters: sign-ins, secret reveals, triage, settings and account changes."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=50, index=True)
    subject: str = Field(default="", max_length=300)
    ip: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class JobLog(SQLModel, table=True):
    """The log lines of one job (stages, findings, warnings), shown live on the scan page."""

    __tablename__ = "job_log"
    __table_args__ = (Index("ix_job_log_job_id", "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=32)
    at: datetime = Field(default_factory=utcnow)
    level: str = Field(default="info", max_length=10)
    message: str = Field(max_length=1000)


class SecretTriage(SQLModel, table=True):
    """An analyst's verdict on a secret, by fingerprint, so it holds across scans and assets."""

    __tablename__ = "secret_triage"

    fingerprint: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=20)  # false_positive | resolved
    note: str = Field(default="", max_length=500)
    actor: str = Field(default="", max_length=100)
    updated_at: datetime = Field(default_factory=utcnow)


class ScanChunk(SQLModel, table=True):
    """One slice of a big scan stage (e.g. some hosts x a port range), run by whichever worker claims it.

    The job that owns the scan writes the slices, any worker may run one, and the owner merges the
    results once all are done. A slice whose runner stops heartbeating is taken over by another.
    """

    __tablename__ = "scan_chunk"
    __table_args__ = (UniqueConstraint("job_id", "stage", "index", name="uq_scan_chunk_job_stage_index"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=32, index=True)
    stage: str = Field(max_length=20)
    index: int
    digest: str = Field(max_length=64)  # of the payload: a retried job reuses only slices of the same work
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    size: int = 0  # probes in the slice (for progress)
    status: str = Field(default="pending", max_length=20)  # pending | running | done
    runner: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    result: Any | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
