"""Configuration from the environment (and a ``.env`` file), via pydantic-settings."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.db import Database
from notifications.retry import DEFAULT_SCHEDULE
from workers.context import WebhookPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="METERLINE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite+aiosqlite:///./meterline.db",
        validation_alias=AliasChoices("DATABASE_URL", "METERLINE_DATABASE_URL"),
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "METERLINE_REDIS_URL")
    )
    env: Literal["development", "production", "test"] = "development"
    grace_period: timedelta = timedelta(hours=24)
    webhook_allowed_private_hosts: list[str] = Field(default_factory=list)
    cors_allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    webhook_retry_delays: list[timedelta] | None = None
    webhook_timeout_seconds: float = 15.0
    webhook_disable_after: timedelta = timedelta(days=5)
    webhook_secret_overlap: timedelta = timedelta(hours=24)
    webhook_concurrency: int = Field(default=16, ge=1, le=512)
    webhook_batch: int = Field(default=100, ge=1, le=1000)
    outbox_sweep_seconds: int = 15
    max_body_bytes: int = 1024 * 1024
    statement_timeout_ms: int = 30_000
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    """Opening a database connection, checking a pooled one still answers, and on SQLite
    waiting for another process' write lock (its busy timeout)."""
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    """Waiting for a free pooled connection (on SQLite, for this process' writer turn).
    A request that cannot reach the database within the two together is answered 503."""
    api_key_environment: Literal["live", "test"] = "live"
    run_worker_in_process: bool = False
    auto_migrate: bool = True
    log_format: Literal["text", "json"] = "text"
    metrics_token: SecretStr | None = None
    rate_limit_key_per_second: float = Field(default=1000.0, ge=0)
    rate_limit_key_burst: int = Field(default=2000, ge=0)
    rate_limit_token_per_second: float = Field(default=20.0, ge=0)
    rate_limit_token_burst: int = Field(default=100, ge=0)
    worker_metrics_port: int | None = None

    @field_validator("outbox_sweep_seconds")
    @classmethod
    def _divides_a_minute(cls, value: int) -> int:
        if value < 1 or 60 % value:
            raise ValueError("must divide 60 (1, 2, 3, 5, 10, 15, 20 or 30)")
        return value

    @cached_property
    def redis_data_dir(self) -> Path:
        """Where the embedded Redis keeps its files: next to the SQLite database."""
        path = self.database_url.split("///", 1)[-1] if "sqlite" in self.database_url else "."
        return Path(path).resolve().parent / ".meterline-redis"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def database(self) -> Database:
        """The database with this installation's timeouts (every process opens it so)."""
        return Database(
            self.database_url,
            statement_timeout_ms=self.statement_timeout_ms,
            connect_timeout=self.database_connect_timeout_seconds,
            pool_timeout=self.database_pool_timeout_seconds,
        )

    def webhook_policy(self) -> WebhookPolicy:
        """How the workers deliver webhooks (tests shorten the retry schedule)."""
        return WebhookPolicy(
            schedule=tuple(self.webhook_retry_delays or DEFAULT_SCHEDULE),
            timeout=self.webhook_timeout_seconds,
            disable_after=self.webhook_disable_after,
            allowed_private=tuple(self.webhook_allowed_private_hosts),
            concurrency=self.webhook_concurrency,
            batch=self.webhook_batch,
        )
