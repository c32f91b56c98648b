"""Jobs: deliver one webhook attempt (SPEC §10), and the sweeper that re-enqueues what
Redis lost (deliveries, alert evaluations, Stripe pushes). The delivery row is the truth; a job only
acts on a due, unleased delivery."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

from billing.errors import ValidationError
from models.store.alert_requests import pending_evaluations
from models.store.invoice_syncs import due_syncs
from models.store.webhook_deliveries import (
    AttemptLog,
    Leased,
    due_deliveries,
    lease_delivery,
    record_attempt,
)
from models.store.webhook_endpoints import disable_endpoint, record_health
from models.store.webhook_messages import fail_pending
from notifications.catalog import endpoint_disabled
from notifications.outbox import Outbox
from notifications.queue import (
    enqueue_alert_evaluation,
    enqueue_deliveries,
    enqueue_stripe_syncs,
)
from notifications.retry import JITTER, next_delay, parse_retry_after, should_disable
from notifications.sender import Attempt, send
from notifications.signing import signature_headers
from notifications.ssrf import check_destination
from workers.context import JobContext, job_context, job_redis

SWEEP_BATCH = 1000
REFUSED = "refused: "  # the error of an attempt the SSRF guard stopped before sending
EVALUATION_SLACK = timedelta(seconds=10)  # the normal path's time to evaluate


async def _attempt(jobs: JobContext, leased: Leased, now: datetime) -> Attempt:
    endpoint = leased.endpoint
    try:
        async with asyncio.timeout(jobs.webhooks.timeout):
            await check_destination(endpoint.url, jobs.webhooks.allowed_private)
    except ValidationError as refused:
        return Attempt(None, 0, error=f"{REFUSED}{refused.message}")
    except TimeoutError:
        return Attempt(None, 0, error=f"{REFUSED}{endpoint.url} did not resolve in time")
    headers = signature_headers(leased.message_id, now, leased.body, endpoint.signing_secrets(now))
    return await send(jobs.http, endpoint.url, headers, leased.body.encode(), jobs.webhooks.timeout)


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """Send one attempt of a delivery, log it, and schedule the next attempt after a
    failure (``429``/``503`` honour ``Retry-After`` within the schedule's bound). ``410``
    disables the endpoint at once; so does failing every attempt for ``disable_after``.
    Returns what happened: skipped | succeeded | retrying | failed."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    now = jobs.clock()
    async with jobs.db.write(urgent=True) as conn:
        leased = await lease_delivery(conn, delivery_id, now, jobs.webhooks.lease)
        if leased is not None and not leased.endpoint.enabled:
            await fail_pending(conn, leased.endpoint.id, now)  # replayed to a disabled one
            leased = None
    if leased is None:
        return "skipped"
    attempt = await _attempt(jobs, leased, now)
    done = jobs.clock()
    retry_at = None
    if not attempt.succeeded and not attempt.gone:
        retry_after = (
            parse_retry_after(attempt.retry_after, done)
            if attempt.status_code in (429, 503)
            else None
        )
        delay = next_delay(
            leased.attempts + 1,
            jobs.webhooks.schedule,
            random.uniform(-JITTER, JITTER),
            retry_after,
        )
        retry_at = None if delay is None else done + delay
    outbox = Outbox()
    endpoint = leased.endpoint
    async with jobs.db.write(urgent=True) as conn:
        reason = None
        failing_since = await record_health(conn, endpoint.id, attempt.succeeded, done)
        if attempt.gone:
            reason = "the endpoint answered 410 Gone"
        elif should_disable(failing_since, done, jobs.webhooks.disable_after):
            reason = f"every attempt failed since {failing_since:%Y-%m-%dT%H:%M:%SZ}"
        if reason is not None and await disable_endpoint(conn, endpoint.id, reason, done):
            event = endpoint_disabled(endpoint.id, endpoint.url, reason)
            await outbox.emit(conn, leased.org_id, event, done)
            retry_at = None
        log = AttemptLog(
            attempt.status_code, attempt.duration_ms, attempt.response_body, attempt.error
        )
        await record_attempt(
            conn, leased, log, done, succeeded=attempt.succeeded, retry_at=retry_at
        )
    result = "succeeded" if attempt.succeeded else "retrying" if retry_at else "failed"
    jobs.metrics.webhook_attempts.labels(_outcome(attempt, result)).inc()
    if retry_at is not None:
        outbox.add_due([(delivery_id, retry_at)])
    await outbox.dispatch(pool)
    return result


def _outcome(attempt: Attempt, result: str) -> str:
    """The attempt as counted: gone (410) and refused (never sent) apart, else the result."""
    if attempt.gone:
        return "gone"
    if attempt.error is not None and attempt.error.startswith(REFUSED):
        return "refused"
    return result


async def outbox_sweeper(ctx: dict[str, Any]) -> int:
    """Re-enqueue what the database says is owed and Redis may have lost: pending
    deliveries and Stripe pushes that are due and not under way, and alert evaluations
    requested more than ``EVALUATION_SLACK`` ago and not done. Duplicates of a queued job
    are ignored by ARQ. Returns how many jobs were asked for."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    now = jobs.clock()
    async with jobs.db.read() as conn:
        due = await due_deliveries(conn, now, SWEEP_BATCH)
        owed = await pending_evaluations(conn, now - EVALUATION_SLACK, SWEEP_BATCH)
        pushes = await due_syncs(conn, now, SWEEP_BATCH)
    await enqueue_deliveries(pool, due)
    await enqueue_stripe_syncs(pool, pushes)
    by_org: dict[str, list[str]] = {}
    for org_id, customer_id in owed:
        by_org.setdefault(org_id, []).append(customer_id)
    for org_id, customer_ids in by_org.items():
        await enqueue_alert_evaluation(pool, org_id, customer_ids)
    return len(due) + len(owed) + len(pushes)
