"""Evaluating a customer's alerts (SPEC §7): measure the open period through the billing
core, move each (alert, customer, group values) state and store it. The caller writes the
notifications of the returned transitions in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.alerts import AlertRule, AlertTransition, AlertType, CustomerSnapshot, evaluate
from billing.periods import add_months
from models.customers import Customer
from models.drafts import drafts_of_customers
from models.store import dialect
from models.store.alert_requests import mark_evaluated, requests_seen
from models.store.alerts import (
    alerts_of_customers,
    evaluated_alerts,
    mark_alerts_evaluated,
    save_statuses,
)
from models.store.contracts import contracts_of_customers
from models.store.metrics import active_metrics
from models.store.rollup_reads import window_partials
from models.tables import table

customers = table(Customer)


@dataclass(frozen=True)
class Evaluated:
    rule: AlertRule
    transition: AlertTransition


def _month_of(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)


async def evaluate_customer(
    conn: AsyncConnection, org_id: str, customer_id: str, now: datetime, grace: timedelta
) -> list[Evaluated]:
    """Evaluate every live alert watching the customer; store the states that moved and
    return every transition that changed something (those with a ``notification`` are due).

    Evaluations of one customer take turns (the customer's row is locked until commit),
    so two runs never both see the old state and notify twice. The open period is the
    one holding ``now`` (of the customer's first contract; the UTC month without one).
    An alert is evaluated "on create" only the first time it is evaluated for a customer
    that existed when it was created (a marker remembers that first time, so groups that
    appear later, or a reset, never count as the creation's). The evaluation answers every
    request made before it took the lock (``alert_evaluations``); later ones stay pending."""
    query = select(customers.c.created_at).where(
        (customers.c.org_id == org_id) & (customers.c.id == customer_id)
    )
    if not dialect.is_sqlite(conn):
        query = query.with_for_update()
    created = (await conn.execute(query)).scalar_one_or_none()
    seen = await requests_seen(conn, org_id, customer_id)
    await mark_evaluated(conn, org_id, customer_id, seen)
    records = (await alerts_of_customers(conn, org_id, [customer_id]))[customer_id]
    if created is None or not records:
        return []
    by_customer = await contracts_of_customers(conn, org_id, [customer_id])
    drafts = (await drafts_of_customers(conn, org_id, by_customer, now, grace))[customer_id]
    current = [
        invoice
        for found in drafts
        for invoice in found.invoices
        if invoice.starting_at <= now < invoice.ending_before
    ]
    metrics = {m.id: m for m in await active_metrics(conn, org_id)}
    wanted = {
        r.rule.billable_metric_id
        for r in records
        if r.rule.alert_type is AlertType.USAGE_THRESHOLD_REACHED
    }
    usage = {}
    if wanted:
        start, end = (
            (current[0].starting_at, current[0].ending_before) if current else _month_of(now)
        )
        picked = [metrics[m] for m in wanted if m in metrics]
        usage = await window_partials(conn, org_id, customer_id, picked, start, end)
    snapshot = CustomerSnapshot(
        customer_id, now, current, usage, [v for found in drafts for v in found.balances]
    )
    before = await evaluated_alerts(conn, org_id, customer_id)
    evaluated: list[Evaluated] = []
    for record in records:
        states = {status.group: status for status in record.statuses}
        on_create = record.rule.id not in before and created <= record.created_at
        for transition in evaluate(record.rule, snapshot, metrics, states, on_create):
            if transition.status != states.get(transition.status.group):
                evaluated.append(Evaluated(record.rule, transition))
    await save_statuses(conn, org_id, [e.transition.status for e in evaluated], now)
    firsts = [r.rule.id for r in records if r.rule.id not in before]
    await mark_alerts_evaluated(conn, org_id, customer_id, firsts, now)
    return evaluated
