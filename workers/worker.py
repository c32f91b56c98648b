"""Building the ARQ worker, standalone (``meterline worker``) or inside the API process."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from arq import Retry, Worker
from arq.connections import ArqRedis
from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine
from arq.worker import Function, func
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from models.db import Database
from notifications.queue import BACKFILL_METRIC, DELIVER_WEBHOOK, EVALUATE_ALERTS, SYNC_STRIPE
from workers.alerts import evaluate_alerts
from workers.backfill import backfill_metric
from workers.context import CONTEXT_KEY, JobContext, JobMetrics, WebhookPolicy
from workers.deliver import deliver_webhook, outbox_sweeper
from workers.finalize import finalize_invoices
from workers.lifecycle import lifecycle_scheduler
from workers.maintenance import prune_dedupe_keys
from workers.stripe_sync import sync_stripe

log = logging.getLogger("meterline.worker")

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


Job = TypeVar("Job", Function, CronJob)


def measured(job: Job, metrics: JobMetrics) -> Job:
    """``job`` timed into ``meterline_job_duration_seconds`` and counted into
    ``meterline_job_failures_total`` when it raises (a cancellation too: ARQ's timeout),
    labelled by its name (a cron's without ``cron:``). ``Retry`` is a requested re-run,
    not a failure. Same ARQ name, settings and job ids."""
    name = job.name.removeprefix("cron:")
    duration, failures = metrics.job_duration.labels(name), metrics.job_failures.labels(name)
    coroutine = job.coroutine

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await coroutine(ctx, *args, **kwargs)
        except Retry:
            raise
        except (Exception, asyncio.CancelledError):
            failures.inc()
            raise
        finally:
            duration.observe(time.perf_counter() - started)

    wrapped: WorkerCoroutine = run
    return dataclasses.replace(job, coroutine=wrapped)


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
    metrics: JobMetrics | None = None,
    metrics_port: int | None = None,
    metrics_addr: str = "0.0.0.0",
) -> Worker:
    """A worker on ``pool`` whose jobs reach the database through ``db``. Its job metrics
    go to ``metrics`` (the API's registry for the in-process worker; a private one by
    default); with ``metrics_port`` a standalone worker serves them in Prometheus format
    on ``metrics_addr:metrics_port`` while it runs (one process: no multiprocess mode)."""
    metrics = metrics or JobMetrics()
    jobs = JobContext(db, clock, grace_period, webhooks or WebhookPolicy(), metrics=metrics)
    served: list[Any] = []

    async def startup(ctx: dict[str, Any]) -> None:
        if metrics_port is not None and not served:  # once, though polling may restart
            server, _ = start_http_server(metrics_port, metrics_addr, registry=metrics.registry)
            served.append(server)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await jobs.slots.aclose()
        for server in served:
            await asyncio.to_thread(server.shutdown)
            server.server_close()

    return Worker(
        functions=[measured(job, metrics) for job in FUNCTIONS],
        cron_jobs=[] if burst else [measured(job, metrics) for job in crons(sweep_every)],
        redis_pool=pool,
        ctx={CONTEXT_KEY: jobs},
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        burst=burst,
        poll_delay=0.05,
        keep_result=60,
    )


RECONNECT_FIRST, RECONNECT_MOST = 0.5, 10.0
"""Seconds before polling again after Redis went away: doubling from the first, at most
the most."""
STEADY_SECONDS = 30.0
"""A run that polled this long was healthy: the next outage starts the wait over."""


async def run_worker(worker: Worker) -> None:
    """Run ``worker`` until it returns (burst mode) or is cancelled, riding out Redis
    outages: a Redis error ends ARQ's polling loop, so the worker waits (0.5 s,
    doubling to 10 s; logged) and polls again on the same pool, which reconnects. Jobs
    already started run on; what Redis lost meanwhile the outbox sweeper re-enqueues."""
    loop = asyncio.get_running_loop()
    delay = RECONNECT_FIRST
    while True:
        started = loop.time()
        try:
            await worker.async_run()
            return
        except (RedisError, OSError) as error:  # also WatchError, LOADING: Redis coming back
            if loop.time() - started >= STEADY_SECONDS:
                delay = RECONNECT_FIRST
            log.warning("Redis is unreachable (%s); polling again in %.1f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MOST)
