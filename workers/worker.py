"""Building the ARQ worker, standalone (``meterline worker``) or inside the API process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import func

from models.db import Database
from notifications.queue import BACKFILL_METRIC, DELIVER_WEBHOOK, EVALUATE_ALERTS, SYNC_STRIPE
from workers.alerts import evaluate_alerts
from workers.backfill import backfill_metric
from workers.context import CONTEXT_KEY, JobContext, WebhookPolicy
from workers.deliver import deliver_webhook, outbox_sweeper
from workers.finalize import finalize_invoices
from workers.lifecycle import lifecycle_scheduler
from workers.maintenance import prune_dedupe_keys
from workers.stripe_sync import sync_stripe

FUNCTIONS = [
    func(backfill_metric, name=BACKFILL_METRIC, max_tries=10),
    # keep_result=0: a finished run frees its id at once (see enqueue_alert_evaluation)
    func(evaluate_alerts, name=EVALUATE_ALERTS, max_tries=5, keep_result=0),
    func(deliver_webhook, name=DELIVER_WEBHOOK, max_tries=3, keep_result=0, timeout=120),
    func(sync_stripe, name=SYNC_STRIPE, max_tries=3, keep_result=0, timeout=600),
]


def crons(sweep_every: int) -> list[Any]:
    """Every minute: finalization (at :00) and the lifecycle scheduler (at :30); the outbox
    sweep every ``sweep_every`` seconds (a divisor of 60); dedupe pruning daily. ARQ runs
    each cron tick once whatever the number of workers; the jobs are idempotent anyway."""
    return [
        cron(finalize_invoices, second=0, run_at_startup=True),
        cron(lifecycle_scheduler, second=30, run_at_startup=True),
        cron(outbox_sweeper, second=set(range(0, 60, sweep_every)), run_at_startup=True),
        cron(prune_dedupe_keys, hour=3, minute=17, second=0),
    ]


def build_worker(
    pool: ArqRedis,
    db: Database,
    clock: Callable[[], datetime],
    *,
    handle_signals: bool,
    burst: bool = False,
    grace_period: timedelta = timedelta(hours=24),
    webhooks: WebhookPolicy | None = None,
    sweep_every: int = 15,
) -> Worker:
    """A worker on ``pool`` whose jobs reach the database through ``db``."""
    jobs = JobContext(db, clock, grace_period, webhooks or WebhookPolicy())

    async def shutdown(ctx: dict[str, Any]) -> None:
        await jobs.http.aclose()

    return Worker(
        functions=FUNCTIONS,
        cron_jobs=[] if burst else crons(sweep_every),
        redis_pool=pool,
        ctx={CONTEXT_KEY: jobs},
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        burst=burst,
        poll_delay=0.05,
        keep_result=60,
    )
