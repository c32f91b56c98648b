"""Jobs: deliver webhook attempts (SPEC §10) in batches, and the sweeper that re-enqueues
what Redis lost (deliveries, alert evaluations, Stripe pushes).

A ``deliver_webhook`` job is enqueued per delivery (its id names the attempt's slot, so
duplicates collapse). A run takes its delivery and up to ``WebhookPolicy.batch`` - 1 others
that are due in one transaction, sends them at once (at most ``WebhookPolicy.concurrency``
in flight per process), records every attempt in a second transaction and withdraws the
queued jobs of the others. The delivery row is the truth; a job only acts on due, unleased
deliveries, and a lease is held until its attempt is recorded (or it runs out: the sweeper
then finds the delivery due again)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import ValidationError
from models.store.alert_requests import pending_evaluations
from models.store.invoice_syncs import due_syncs
from models.store.webhook_deliveries import (
    AttemptLog,
    Leased,
    Settled,
    due_deliveries,
    lease_deliveries,
    record_attempts,
    release_leases,
)
from models.store.webhook_endpoints import disable_endpoint, record_health
from models.store.webhook_messages import fail_pending
from notifications.catalog import endpoint_disabled
from notifications.outbox import Outbox
from notifications.queue import (
    enqueue_alert_evaluation,
    enqueue_deliveries,
    enqueue_stripe_syncs,
    withdraw_deliveries,
)
from notifications.retry import JITTER, next_delay, parse_retry_after, should_disable
from notifications.sender import Attempt, send
from notifications.signing import signature_headers
from notifications.ssrf import check_destination
from workers.context import JobContext, job_context, job_redis

SWEEP_BATCH = 1000
REFUSED = "refused: "  # the error of an attempt the SSRF guard stopped before sending
EVALUATION_SLACK = timedelta(seconds=10)  # the normal path's time to evaluate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Made:
    """An attempt made of a leased delivery, ended at ``at``."""

    leased: Leased
    attempt: Attempt
    at: datetime


@dataclass(frozen=True)
class Checked:
    """What the SSRF guard made of a URL just before its sends: why it is refused (None:
    allowed), else the address to connect to (None: a host allowed by name)."""

    refused: str | None
    address: str | None = None


async def _check(jobs: JobContext, urls: Iterable[str]) -> dict[str, Checked]:
    """Per URL, the SSRF guard's verdict. A batch checks each URL once, just before its
    sends, and connects to the address checked (never resolving the name again)."""
    policy = jobs.webhooks

    async def check(url: str) -> Checked:
        try:
            async with asyncio.timeout(policy.timeout):
                address = await check_destination(url, policy.allowed_private)
        except ValidationError as refused:
            return Checked(f"{REFUSED}{refused.message}")
        except TimeoutError:
            return Checked(f"{REFUSED}{url} did not resolve in time")
        return Checked(None, None if address is None else str(address))

    wanted = sorted(set(urls))
    return dict(zip(wanted, await asyncio.gather(*map(check, wanted)), strict=True))


async def _attempt(
    jobs: JobContext, leased: Leased, now: datetime, checked: Checked, latest_start: float
) -> Made | None:
    """One attempt, once a sending slot is free; None (not made) when the slot came too
    late to end within the lease (``time.monotonic() > latest_start``)."""
    if checked.refused is not None:
        return Made(leased, Attempt(None, 0, error=checked.refused), jobs.clock())
    endpoint = leased.endpoint
    async with jobs.slots.slot(endpoint.url, checked.address) as client:
        if time.monotonic() > latest_start:
            return None
        headers = signature_headers(
            leased.message_id, now, leased.body, endpoint.signing_secrets(now)
        )
        try:
            attempt = await send(
                client,
                endpoint.url,
                headers,
                leased.body.encode(),
                jobs.webhooks.timeout,
                connect_to=checked.address,
            )
        except Exception as exc:  # one bad delivery must not sink its batch
            log.exception("delivery %s could not be sent", leased.delivery_id)
            attempt = Attempt(None, 0, error=f"not sent: {exc!r}")
    return Made(leased, attempt, jobs.clock())


def _retry_at(jobs: JobContext, made: Made) -> datetime | None:
    """When to try again after ``made``: never after a success or a ``410``, else per the
    schedule (``429``/``503`` honour ``Retry-After`` within the step's bound)."""
    attempt = made.attempt
    if attempt.succeeded or attempt.gone:
        return None
    retry_after = (
        parse_retry_after(attempt.retry_after, made.at)
        if attempt.status_code in (429, 503)
        else None
    )
    delay = next_delay(
        made.leased.attempts + 1,
        jobs.webhooks.schedule,
        random.uniform(-JITTER, JITTER),
        retry_after,
    )
    return None if delay is None else made.at + delay


async def _note_health(
    conn: AsyncConnection, jobs: JobContext, outbox: Outbox, made: Sequence[Made]
) -> set[str]:
    """Note each endpoint's outcomes in the order its attempts ended (a success ends a run
    of failures; the run restarts at the first failure after the last success), then
    disable it after a ``410`` or failing every attempt for ``disable_after``. Returns the
    endpoints disabled now (their ``webhook_endpoint.disabled`` is emitted in ``outbox``)."""
    by_endpoint: dict[str, list[Made]] = {}
    for one in sorted(made, key=lambda m: m.at):
        by_endpoint.setdefault(one.leased.endpoint.id, []).append(one)
    disabled: set[str] = set()
    for endpoint_id, tries in by_endpoint.items():
        successes = [n for n, m in enumerate(tries) if m.attempt.succeeded]
        first_failure = successes[-1] + 1 if successes else 0
        if successes:
            await record_health(conn, endpoint_id, True, tries[successes[-1]].at)
        failing_since = None
        if first_failure < len(tries):
            failing_since = await record_health(conn, endpoint_id, False, tries[first_failure].at)
        last, reason = tries[-1], None
        if any(m.attempt.gone for m in tries):
            reason = "the endpoint answered 410 Gone"
        elif should_disable(failing_since, last.at, jobs.webhooks.disable_after):
            reason = f"every attempt failed since {failing_since:%Y-%m-%dT%H:%M:%SZ}"
        if reason is not None and await disable_endpoint(conn, endpoint_id, reason, last.at):
            endpoint = last.leased.endpoint
            event = endpoint_disabled(endpoint_id, endpoint.url, reason)
            await outbox.emit(conn, last.leased.org_id, event, last.at)
            disabled.add(endpoint_id)
    return disabled


def _result(settled: Settled) -> str:
    return "succeeded" if settled.succeeded else "retrying" if settled.retry_at else "failed"


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """Send an attempt of this delivery and of up to ``batch`` - 1 other due ones, log
    every attempt, and schedule the next after a failure (``429``/``503`` honour
    ``Retry-After`` within the schedule's bound). ``410`` disables the endpoint at once; so
    does failing every attempt for ``disable_after``. Returns what happened to this
    delivery: skipped (not due, leased elsewhere, settled, or not sent in time) |
    succeeded | retrying | failed."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    policy = jobs.webhooks
    started, now = time.monotonic(), jobs.clock()
    async with jobs.db.write(urgent=True) as conn:
        leased = await lease_deliveries(conn, delivery_id, now, policy.lease, policy.batch - 1)
        for x in {x.endpoint.id: x for x in leased if not x.endpoint.enabled}.values():
            await fail_pending(conn, x.endpoint.id, now, x.leased_until)  # to a disabled one
    batch = [x for x in leased if x.endpoint.enabled]
    if not batch:
        return "skipped"
    checked = await _check(jobs, (x.endpoint.url for x in batch))
    latest_start = started + policy.lease.total_seconds() - policy.timeout
    found = await asyncio.gather(
        *(_attempt(jobs, x, now, checked[x.endpoint.url], latest_start) for x in batch)
    )
    made = [m for m in found if m is not None]
    unsent = [x for x, m in zip(batch, found, strict=True) if m is None]
    outbox = Outbox()
    async with jobs.db.write(urgent=True) as conn:
        disabled = await _note_health(conn, jobs, outbox, made)
        settled = [
            Settled(
                m.leased,
                AttemptLog(
                    m.attempt.status_code,
                    m.attempt.duration_ms,
                    m.attempt.response_body,
                    m.attempt.error,
                ),
                m.at,
                succeeded=m.attempt.succeeded,
                retry_at=None if m.leased.endpoint.id in disabled else _retry_at(jobs, m),
            )
            for m in made
        ]
        await record_attempts(conn, settled)
        await release_leases(conn, unsent)
    for m, s in zip(made, settled, strict=True):
        jobs.metrics.webhook_attempts.labels(_outcome(m.attempt, _result(s))).inc()
    others = [s.leased for s in settled if s.leased.delivery_id != delivery_id]
    await withdraw_deliveries(pool, [(x.delivery_id, x.due) for x in others])
    outbox.add_due([(s.leased.delivery_id, s.retry_at) for s in settled if s.retry_at])
    outbox.add_due([(x.delivery_id, x.due) for x in unsent])
    await outbox.dispatch(pool)
    own = [s for s in settled if s.leased.delivery_id == delivery_id]
    return _result(own[0]) if own else "skipped"


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
