"""The typed context every job receives (ARQ hands jobs a plain dict)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from arq.connections import ArqRedis

from integrations.stripe import RETRY_SCHEDULE
from models.db import Database
from notifications.retry import DEFAULT_SCHEDULE

CONTEXT_KEY = "meterline"


@dataclass(frozen=True)
class WebhookPolicy:
    """How deliveries are made: the retry schedule, the per-attempt timeout (seconds),
    when a failing endpoint is disabled, and which private destinations are allowed."""

    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE
    timeout: float = 15.0
    disable_after: timedelta = timedelta(days=5)
    allowed_private: Sequence[str] = ()

    @property
    def lease(self) -> timedelta:
        """How long a worker holds a delivery it is sending: twice the timeout and 5 s more,
        after which another worker may take it over (this one died)."""
        return timedelta(seconds=2 * self.timeout + 5)


@dataclass(frozen=True)
class JobContext:
    db: Database
    clock: Callable[[], datetime]
    grace_period: timedelta = timedelta(hours=24)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient())
    stripe_schedule: Sequence[timedelta] = RETRY_SCHEDULE


def job_context(ctx: dict[str, Any]) -> JobContext:
    found = ctx[CONTEXT_KEY]
    assert isinstance(found, JobContext)
    return found


def job_redis(ctx: dict[str, Any]) -> ArqRedis:
    """The worker's Redis pool (ARQ puts it in the context)."""
    found = ctx["redis"]
    assert isinstance(found, ArqRedis)
    return found
