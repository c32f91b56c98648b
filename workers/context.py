"""The typed context every job receives (ARQ hands jobs a plain dict)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry, Counter, Histogram

from integrations.stripe import RETRY_SCHEDULE
from models.db import Database
from notifications.retry import DEFAULT_SCHEDULE
from notifications.sender import Slots

CONTEXT_KEY = "meterline"


@dataclass(frozen=True)
class WebhookPolicy:
    """How deliveries are made: the retry schedule, the per-attempt timeout (seconds),
    when a failing endpoint is disabled, which private destinations are allowed, how many
    attempts a worker process has in flight at once (``concurrency``, also its HTTP
    connections) and how many due deliveries a job takes at once (``batch``)."""

    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE
    timeout: float = 15.0
    disable_after: timedelta = timedelta(days=5)
    allowed_private: Sequence[str] = ()
    concurrency: int = 16
    batch: int = 100

    @property
    def lease(self) -> timedelta:
        """How long a worker holds a delivery it is sending: twice the timeout and 5 s more,
        after which another worker may take it over (this one died)."""
        return timedelta(seconds=2 * self.timeout + 5)


JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
WEBHOOK_OUTCOMES = ("succeeded", "retrying", "failed", "refused", "gone")


class JobMetrics:
    """The workers' Prometheus metrics, in ``registry``: the API's own when the worker runs
    in its process, a private one (served on a port, or unread) otherwise."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.job_duration = Histogram(
            "meterline_job_duration_seconds",
            "How long each run of a job (or cron) took, by job.",
            ["job"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_failures = Counter(
            "meterline_job_failures_total",
            "Runs of a job that raised (ARQ retries or gives up), by job.",
            ["job"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "meterline_webhook_attempts_total",
            "Webhook delivery attempts by outcome: succeeded, retrying, failed (no retry "
            "left), refused (destination not allowed), gone (410: endpoint disabled).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_attempts.labels(outcome)


@dataclass(frozen=True)
class JobContext:
    db: Database
    clock: Callable[[], datetime]
    grace_period: timedelta = timedelta(hours=24)
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    stripe_schedule: Sequence[timedelta] = RETRY_SCHEDULE
    metrics: JobMetrics = field(default_factory=JobMetrics)

    @cached_property
    def slots(self) -> Slots:
        """The process's webhook sending slots: ``webhooks.concurrency`` attempts at once."""
        return Slots(self.webhooks.concurrency)


def job_context(ctx: dict[str, Any]) -> JobContext:
    found = ctx[CONTEXT_KEY]
    assert isinstance(found, JobContext)
    return found


def job_redis(ctx: dict[str, Any]) -> ArqRedis:
    """The worker's Redis pool (ARQ puts it in the context)."""
    found = ctx["redis"]
    assert isinstance(found, ArqRedis)
    return found
