"""Finalizing invoices (SPEC §6): periods past end + grace are frozen with their ledger
deductions in one transaction; voiding restores what an invoice drew; regenerating
re-rates a voided invoice's period with today's data."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contracts import Contract
from billing.drawdown import LedgerEntry, available_balances, contract_segments, void_entries
from billing.errors import ConflictError, NotFoundError
from billing.invoices import InvoiceStatus
from billing.invoicing import BillingContext, Usage, assemble, finalize
from billing.periods import Period, grace_deadline, periods
from models.drafts import billing_contexts
from models.ids import new_id
from models.store.contracts import contracts_by_id, lock_contract
from models.store.invoices import (
    StoredInvoice,
    add_ledger_entries,
    closed_periods,
    invoice_by_id,
    ledgers_of,
    mark_void,
    store_invoice,
)
from models.store.late_usage import count_late, lock_late_counts, partials_at_cutoff
from models.store.rollup_reads import window_partials


def due_periods(contract: Contract, now: datetime, grace: timedelta) -> list[Period]:
    """The contract's periods whose grace deadline has passed, oldest first."""
    return [p for p in periods(contract.schedule, now) if grace_deadline(p, grace) <= now]


async def _freeze(
    conn: AsyncConnection,
    org_id: str,
    context: BillingContext,
    period: Period,
    usage: Usage,
    ledgers: dict[str, list[LedgerEntry]],
    now: datetime,
    *,
    usage_cutoff: datetime,
    late_events: int = 0,
    replaces_invoice_id: str | None = None,
) -> StoredInvoice:
    """Assemble the period against the recorded ledger, freeze it and store it with its
    deductions (also appended to ``ledgers`` for the next period)."""
    segments = contract_segments(context.contract, period.ending_before)
    draft = assemble(context, period, usage, available_balances(segments, ledgers))
    invoice_id = new_id("inv")
    invoice, entries = finalize(draft, invoice_id, now)
    for entry in entries:
        ledgers.setdefault(entry.segment_id, []).append(entry)
    return await store_invoice(
        conn,
        org_id,
        invoice,
        entries,
        now,
        invoice_id=invoice_id,
        usage_cutoff=usage_cutoff,
        late_events=late_events,
        replaces_invoice_id=replaces_invoice_id,
    )


async def finalize_due(
    conn: AsyncConnection, org_id: str, contract: Contract, now: datetime, grace: timedelta
) -> list[StoredInvoice]:
    """Finalize every period of ``contract`` past its grace deadline that has no invoice
    yet, oldest first. Usage counts the events that arrived by the deadline, even when this
    runs later; those that arrived after are the invoice's ``late_events``."""
    await lock_contract(conn, contract.id)
    closed = await closed_periods(conn, org_id, [contract.id])
    due = [
        p for p in due_periods(contract, now, grace) if (contract.id, p.starting_at) not in closed
    ]
    if not due:
        return []
    customer_id = contract.customer_id
    await lock_late_counts(conn, [customer_id], exclusive=True)
    context = (await billing_contexts(conn, org_id, [contract]))[contract.id]
    metrics = list(context.metrics.values())
    ledgers = await ledgers_of(conn, org_id, [customer_id])
    finalized = []
    for period in due:
        cutoff = grace_deadline(period, grace)
        start, end = period.starting_at, period.ending_before
        late = await count_late(conn, org_id, customer_id, start, end, cutoff)
        usage = await partials_at_cutoff(
            conn, org_id, customer_id, start, end, metrics, cutoff, late
        )
        finalized.append(
            await _freeze(
                conn,
                org_id,
                context,
                period,
                usage,
                ledgers,
                now,
                usage_cutoff=cutoff,
                late_events=late,
            )
        )
    return finalized


async def _live_invoice(
    conn: AsyncConnection, org_id: str, invoice_id: str, customer_id: str | None
) -> StoredInvoice:
    found = await invoice_by_id(conn, org_id, invoice_id, customer_id)
    if found is None:
        raise NotFoundError(f"no invoice {invoice_id!r}", "id")
    return found


async def void_invoice(
    conn: AsyncConnection, org_id: str, invoice_id: str, now: datetime
) -> StoredInvoice:
    """Void a finalized invoice and give back, as ``void_restore`` entries, every balance
    it drew. CONFLICT if it is already void."""
    found = await _live_invoice(conn, org_id, invoice_id, None)
    invoice = found.invoice
    await lock_contract(conn, invoice.contract_id)
    if not await mark_void(conn, invoice_id, now):
        raise ConflictError(f"invoice {invoice_id!r} is already void", "id")
    ledgers = await ledgers_of(conn, org_id, [invoice.customer_id])
    drawn = [entry for entries in ledgers.values() for entry in entries]
    restore = void_entries(drawn, invoice_id, now)
    await add_ledger_entries(conn, org_id, invoice.customer_id, invoice.contract_id, restore)
    return await _live_invoice(conn, org_id, invoice_id, None)


async def regenerate_invoice(
    conn: AsyncConnection, org_id: str, invoice_id: str, now: datetime
) -> StoredInvoice:
    """A new finalized invoice for a voided invoice's period, re-rated with the current
    contract, events and balances, linked to the old one (``replaces_invoice_id``).
    CONFLICT unless the invoice is void, or when its period was already regenerated."""
    old = await _live_invoice(conn, org_id, invoice_id, None)
    if old.invoice.status is not InvoiceStatus.VOID:
        raise ConflictError("only a voided invoice can be regenerated: void it first", "id")
    contract_id = old.invoice.contract_id
    await lock_contract(conn, contract_id)
    period = Period(old.invoice.starting_at, old.invoice.ending_before)
    if (contract_id, period.starting_at) in await closed_periods(conn, org_id, [contract_id]):
        raise ConflictError("this period already has a live invoice", "id")
    contract = (await contracts_by_id(conn, org_id, [contract_id]))[contract_id].contract
    context = (await billing_contexts(conn, org_id, [contract]))[contract_id]
    metrics = list(context.metrics.values())
    usage = await window_partials(
        conn, org_id, contract.customer_id, metrics, period.starting_at, period.ending_before
    )
    ledgers = await ledgers_of(conn, org_id, [contract.customer_id])
    return await _freeze(
        conn,
        org_id,
        context,
        period,
        usage,
        ledgers,
        now,
        usage_cutoff=now,
        replaces_invoice_id=invoice_id,
    )
