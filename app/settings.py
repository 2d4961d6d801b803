"""Every setting AssetMon reads, from the environment and `.env`.

`python -m app.settings --shell` prints the resolved values as shell assignments,
so the start scripts use exactly the defaults the Python code uses.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The Celery queues jobs go to: `default` (health checks, notifications, clean-up), `scans` (recon), `secrets`.
QUEUES = ("default", "scans", "secrets")
# Leave one CPU to the web server (and Redis) by default: the UI must stay quick while jobs run.
SPARE_CPUS = max(1, (os.cpu_count() or 2) - 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # where things live
    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Database, Redis data and logs.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite under DATA_DIR.")
    redis_url: str = "redis://localhost:6379/0"

    # web
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"

    # start.sh
    start_redis: bool = True
    worker_shutdown_timeout: int = Field(default=20, ge=1, description="Seconds of warm shutdown before SIGKILL.")

    # Celery worker
    worker_concurrency: int = Field(default=SPARE_CPUS, ge=1, le=64)
    worker_queues: str = "default,scans,secrets"
    worker_name: str = Field(default="assetmon", description="Celery node name (NAME@host); unique per host.")
    worker_nice: int = Field(default=10, ge=0, le=19, description="Workers run at lower CPU priority than the web UI.")
    job_soft_time_limit: int = Field(default=3600, ge=1)
    job_time_limit: int = Field(default=3900, ge=1)
    result_expires: int = Field(default=86400, ge=60)
    job_max_attempts: int = Field(default=3, ge=1, le=20)

    # dispatcher
    broker_probe_timeout: float = Field(default=0.5, gt=0, le=10)
    broker_probe_cache_seconds: float = Field(default=3.0, ge=0, le=60)
    worker_ping_timeout: float = Field(default=1.0, gt=0, le=10)
    fallback_processes: int = Field(default=SPARE_CPUS, ge=1, le=32)

    # secret scanning
    secrets_max_file_bytes: int = Field(default=256 << 20, ge=1024, description="Bigger files are skipped.")
    secrets_max_decompression_ratio: int = Field(default=100, ge=2, le=10000)
    secrets_chunk_bytes: int = Field(default=8 << 20, ge=64 << 10, le=256 << 20)
    secrets_rules_file: Path | None = Field(default=None, description="Extra rules (TOML) added to the shipped ones.")
    secrets_cache_dir: Path | None = Field(
        default=None, description="Where compiled rule databases are kept (shared safely); empty: DATA_DIR/cache."
    )

    # exposure checks (app/checks/): templates and how hard they may knock
    templates_dirs: str = Field(
        default="", description="Folders of nuclei-format templates run besides AssetMon's own (comma-separated)."
    )
    checks_concurrency: int = Field(default=50, ge=1, le=1000, description="Check requests in flight per job.")
    checks_global_rate: float = Field(default=500.0, gt=0, le=100000, description="Check requests/s in all.")
    checks_host_rate: float = Field(default=50.0, gt=0, le=10000, description="Check requests/s to one host.")
    checks_timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="Per request, to the last byte.")
    checks_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20, description="Response bytes read.")
    checks_allow_bodies: bool = Field(
        default=False, description="Also run templates that send POST/PUT/... (state-changing methods)."
    )

    # subdomain takeover by the provider's HTTP answer (app/scanners/http/takeover.py)
    takeover_http_check: bool = Field(
        default=True, description="Ask a provider's edge for names whose CNAME leads there (its unclaimed page)."
    )
    takeover_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Per takeover request.")
    takeover_max_body_bytes: int = Field(default=256 << 10, ge=1024, le=16 << 20, description="Bytes read.")
    takeover_https_port: int = Field(default=443, ge=1, le=65535, description="Port asked over https.")
    takeover_http_port: int = Field(default=80, ge=1, le=65535, description="Port asked over http.")

    # JavaScript discovery on web targets (what one `secrets_scan_url` job may fetch)
    discovery_max_files: int = Field(default=200, ge=1, le=10000, description="Pages, scripts and maps per job.")
    discovery_max_file_bytes: int = Field(default=32 << 20, ge=1024, description="Decoded size cap per response.")
    discovery_max_total_bytes: int = Field(default=512 << 20, ge=1024, description="Decoded bytes per job.")
    discovery_max_depth: int = Field(default=3, ge=0, le=10, description="Script -> chunk -> chunk ... levels.")
    discovery_timeout_seconds: float = Field(default=300.0, gt=0, description="Wall time budget per job.")
    http_timeout_seconds: float = Field(default=15.0, gt=0, le=300, description="Per request.")
    http_concurrency: int = Field(default=8, ge=1, le=256, description="Requests in flight per job.")
    http_user_agent: str = "AssetMon/0.1 (+attack surface monitor)"
    http_verify_tls: bool = Field(default=False, description="Verify certificates (targets often have broken TLS).")

    # scope of targets
    scope_max_cidr_prefix: int = Field(
        default=16, ge=0, le=32, description="Smallest IPv4 prefix accepted (/16 = 65,536 addresses)."
    )

    # DNS (resolution, brute force, wildcard detection)
    resolvers: str = Field(default="", description="Comma-separated HOST[:PORT]; empty: /etc/resolv.conf.")
    dns_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    dns_retries: int = Field(default=2, ge=0, le=10)
    dns_concurrency: int = Field(default=500, ge=1, le=10000, description="Queries in flight.")
    dns_max_records: int = Field(default=100, ge=1, le=10000, description="Records kept per answer.")
    wordlist_file: Path | None = Field(default=None, description="Labels for brute force instead of the shipped list.")

    # certificate transparency
    ct_url: str = Field(
        default="https://crt.sh/?q=%25.{domain}&output=json", description="JSON search URL; {domain} is replaced."
    )
    ct_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    ct_max_bytes: int = Field(default=64 << 20, ge=1024)

    # port scanning (TCP connect)
    port_concurrency: int = Field(default=2000, ge=1, le=50000, description="Connections in flight, all hosts.")
    port_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    port_retries: int = Field(default=1, ge=0, le=5, description="Extra tries for a port that timed out.")
    port_rate_per_host: int = Field(default=0, ge=0, description="Connection attempts per second per host; 0: no cap.")
    port_rate_global: int = Field(default=0, ge=0, description="Connection attempts per second in total; 0: no cap.")
    scan_chunk_probes: int = Field(
        default=50_000, ge=100, le=10_000_000, description="Probes (host x port) per slice of a scan shared by workers."
    )
    default_ports: str = Field(default="top100", description="Port spec used when a scan names none.")

    # HTTP probing
    http_ports: str = Field(default="80,443,8000,8080,8443", description="Ports probed for web services.")
    http_max_body_bytes: int = Field(default=2 << 20, ge=1024, description="Bytes of a body read for title/hash.")
    http_max_redirects: int = Field(default=5, ge=0, le=20)

    # monitoring: schedules, change detection
    min_schedule_seconds: int = Field(default=300, ge=1, description="Shortest schedule interval accepted.")
    scheduler_tick_seconds: float = Field(default=5.0, gt=0, le=300, description="How often due schedules fire.")
    gone_after_missing_runs: int = Field(default=2, ge=1, le=100, description="Successful scans missing a thing.")
    cert_expiring_days: int = Field(default=14, ge=1, le=365)

    # notifications
    notify_max_attempts: int = Field(default=5, ge=1, le=20)
    notify_backoff_seconds: float = Field(default=2.0, gt=0, le=3600, description="First retry delay; doubles.")
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # retention
    retention_job_days: int = Field(default=30, ge=1, description="Finished job rows older than this are pruned.")
    retention_scan_days: int = Field(default=90, ge=1, description="Scan results older than this are pruned.")
    retention_delivery_days: int = Field(default=30, ge=1)
    retention_interval_seconds: int = Field(default=3600, ge=60, description="How often the clean-up job runs.")

    # access control
    admin_user: str = Field(default="admin", min_length=1, max_length=64, description="First admin's user name.")
    admin_password: str = Field(default="", description="Creates the first admin at start-up when set.")
    api_token: str = Field(default="", description="An admin bearer token for automation; empty: none.")
    secrets_key: str = Field(
        default="",
        description="Fernet key sealing stored secret values; empty: DATA_DIR/secrets.key (made on first use).",
    )
    # live verification of found credentials (off unless asked; app/secrets/verify.py)
    secrets_verify: bool = Field(default=False, description="true: admins may verify findings from the web UI.")
    secrets_verify_urls: dict[str, str] = Field(
        default_factory=dict, description='Base URL per provider kind, JSON: {"github": "https://ghe.example/api/v3"}.'
    )
    secrets_verify_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    secrets_verify_per_minute: int = Field(default=30, ge=1, le=6000, description="Verification requests per process.")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 90, description="A sign-in lasts this long.")
    session_cookie_secure: str = Field(default="auto", description="auto (when served over HTTPS), true or false.")
    login_max_failures: int = Field(default=5, ge=1, le=1000, description="Failed sign-ins per user and address.")
    login_window_seconds: int = Field(default=900, ge=1, description="The window those failures are counted in.")
    metrics_public: bool = Field(default=True, description="false: /metrics needs a bearer token too.")

    # liveness of running jobs
    job_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    job_stale_seconds: float = Field(default=60.0, gt=0)
    reaper_interval_seconds: float = Field(default=15.0, gt=0)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value if value.is_absolute() else (PROJECT_ROOT / value)

    @field_validator("secrets_rules_file", "wordlist_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("ct_url")
    @classmethod
    def _ct_template(cls, value: str) -> str:
        if "{domain}" not in value or urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("CT_URL must be an http(s) URL containing {domain}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not value:
            return value
        if not sep:
            raise ValueError(
                "DATABASE_URL must look like postgresql://user:password@host:5432/assetmon or sqlite:///path"
            )
        # PostgreSQL goes through psycopg 3 whichever way the URL names it.
        if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            return f"postgresql+psycopg://{rest}"
        if scheme == "sqlite":
            return value
        raise ValueError(f"DATABASE_URL: unsupported database '{scheme}' (use postgresql:// or sqlite:///)")

    @field_validator("worker_queues")
    @classmethod
    def _known_queues(cls, value: str) -> str:
        names = [q.strip() for q in value.split(",") if q.strip()]
        unknown = [q for q in names if q not in QUEUES]
        if not names or unknown:
            wrong = f"unknown queue(s) {', '.join(unknown)}; " if unknown else ""
            raise ValueError(f"{wrong}WORKER_QUEUES is a comma-separated list of {', '.join(QUEUES)}")
        return ",".join(names)

    @field_validator("worker_name")
    @classmethod
    def _node_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}(@[A-Za-z0-9_.%-]{1,200})?", value):
            raise ValueError("WORKER_NAME is a name such as w1 or w1@host (letters, digits, . _ -)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError("REDIS_URL must start with redis:// or rediss://")
        return value

    @field_validator("secrets_verify_urls")
    @classmethod
    def _verify_urls(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, url in value.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"SECRETS_VERIFY_URLS: {kind}: {url!r} is not an http(s) URL")
        return value

    @field_validator("api_token")
    @classmethod
    def _long_token(cls, value: str) -> str:
        if value and (len(value) < 24 or any(c.isspace() for c in value)):
            raise ValueError("API_TOKEN must be at least 24 characters without spaces (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("admin_password")
    @classmethod
    def _strong_password(cls, value: str) -> str:
        if value and len(value) < 10:
            raise ValueError("ADMIN_PASSWORD must be at least 10 characters")
        return value

    @field_validator("session_cookie_secure")
    @classmethod
    def _secure_mode(cls, value: str) -> str:
        if value.lower() not in ("auto", "true", "false"):
            raise ValueError("SESSION_COOKIE_SECURE must be auto, true or false")
        return value.lower()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'assetmon.db'}"

    @property
    def queues(self) -> list[str]:
        return [q.strip() for q in self.worker_queues.split(",") if q.strip()]

    @property
    def template_folders(self) -> list[Path]:
        return [Path(p.strip()).expanduser() for p in self.templates_dirs.split(",") if p.strip()]

    @property
    def redis_is_local(self) -> bool:
        return urlsplit(self.redis_url).hostname in ("localhost", "127.0.0.1", "::1", None)

    @property
    def redis_port(self) -> int:
        return urlsplit(self.redis_url).port or 6379

    def redacted_redis_url(self) -> str:
        """The Redis URL without its password, for messages and logs."""
        parts = urlsplit(self.redis_url)
        if parts.password:
            netloc = f"{parts.username or ''}:***@{parts.hostname}"
            if parts.port:
                netloc += f":{parts.port}"
            return parts._replace(netloc=netloc).geturl()
        return self.redis_url


def describe_error(exc: Exception) -> str:
    """A settings validation error as one line per variable, without pydantic's links."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        name = ".".join(str(p) for p in err.get("loc", ())).upper() or "settings"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{name}: {msg} (got {err.get('input')!r})")
    return "; ".join(lines)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def _shell_exports(settings: Settings) -> str:
    values = {
        "DATA_DIR": str(settings.data_dir),
        "REDIS_URL": settings.redis_url,
        "REDIS_URL_REDACTED": settings.redacted_redis_url(),
        "REDIS_IS_LOCAL": "1" if settings.redis_is_local else "0",
        "REDIS_PORT": str(settings.redis_port),
        "HOST": settings.host,
        "PORT": str(settings.port),
        "LOG_LEVEL": settings.log_level,
        "START_REDIS": "1" if settings.start_redis else "0",
        "WORKER_CONCURRENCY": str(settings.worker_concurrency),
        "WORKER_QUEUES": settings.worker_queues,
        "WORKER_NAME": settings.worker_name,
        "WORKER_NICE": str(settings.worker_nice),
        "WORKER_SHUTDOWN_TIMEOUT": str(settings.worker_shutdown_timeout),
    }
    return "\n".join(f"ASSETMON_{k}={shlex.quote(v)}" for k, v in values.items())


if __name__ == "__main__":
    try:
        resolved = Settings()
    except Exception as exc:  # a bad .env: say what is wrong, no traceback
        print(f"assetmon: invalid settings: {describe_error(exc)}", file=sys.stderr)
        sys.exit(2)
    if "--shell" in sys.argv:
        print(_shell_exports(resolved))
    else:
        print(resolved.model_dump_json(indent=2))
