"""Job: evaluate a customer's alerts and notify their transitions (SPEC §7)."""

from __future__ import annotations

from typing import Any

from models.alert_runs import evaluate_customer
from models.store.organizations import grace_of
from notifications.catalog import alert_transition
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from notifications.queue import start_alert_evaluation
from workers.context import job_context, job_redis


async def evaluate_alerts(ctx: dict[str, Any], org_id: str, customer_id: str) -> int:
    """Evaluate, store the states and write ``alert.triggered`` / ``alert.resolved`` in one
    transaction; returns the number of notifications."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    await start_alert_evaluation(pool, org_id, customer_id)
    now = jobs.clock()
    outbox = Outbox()
    async with jobs.db.write(urgent=True) as conn:
        grace = await grace_of(conn, org_id, jobs.grace_period)
        evaluated = await evaluate_customer(conn, org_id, customer_id, now, grace)
        notified = [e for e in evaluated if e.transition.notification is not None]
        for e in notified:
            await outbox.emit(conn, org_id, alert_transition(e.rule, e.transition), now)
        if evaluated:
            outbox.push(org_id, (Topic.ALERTS,), [customer_id])
    await outbox.dispatch(pool)
    return len(notified)
