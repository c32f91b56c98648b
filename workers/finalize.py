"""Cron: finalize every period past its end + grace (SPEC §6)."""

from __future__ import annotations

from typing import Any

from billing.contracts import BillingProvider
from models.finalization import due_periods, finalize_due
from models.store.contracts import live_contracts_everywhere
from models.store.invoices import closed_periods
from models.store.organizations import grace_of
from notifications.catalog import EventType, invoice_changed
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from workers.context import job_context, job_redis


async def finalize_invoices(ctx: dict[str, Any]) -> int:
    """Finalize what is due, one transaction per contract (invoice, ledger deductions and
    ``invoice.finalized`` together); then re-evaluate the customers' alerts. Returns the
    number of invoices finalized. Safe to run twice or on two workers at once."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    now = jobs.clock()
    async with jobs.db.read() as conn:
        contracts = await live_contracts_everywhere(conn)
        graces = {o: await grace_of(conn, o, jobs.grace_period) for o in {o for o, _ in contracts}}
        candidates = [
            (org_id, record.contract)
            for org_id, record in contracts
            if due_periods(record.contract, now, graces[org_id])
        ]
        by_org: dict[str, list[str]] = {}
        for org_id, contract in candidates:
            by_org.setdefault(org_id, []).append(contract.id)
        closed = {
            key
            for org_id, contract_ids in by_org.items()
            for key in await closed_periods(conn, org_id, contract_ids, include_void=True)
        }
    finalized = 0
    for org_id, contract in candidates:
        due = due_periods(contract, now, graces[org_id])
        if all((contract.id, p.starting_at) in closed for p in due):
            continue
        outbox = Outbox()
        async with jobs.db.write() as conn:
            stored = await finalize_due(conn, org_id, contract, now, graces[org_id])
            for s in stored:
                event = invoice_changed(EventType.INVOICE_FINALIZED, s.id, s.invoice, s.late_events)
                await outbox.emit(conn, org_id, event, now)
            if contract.billing_provider is BillingProvider.STRIPE:
                outbox.sync_invoices((s.id, now) for s in stored)
            if stored:
                await outbox.evaluate(conn, org_id, [contract.customer_id], now)
                outbox.push(org_id, (Topic.BALANCE,), [contract.customer_id])
        finalized += len(stored)
        await outbox.dispatch(pool)
    return finalized
