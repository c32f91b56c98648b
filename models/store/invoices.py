"""Finalized invoices and the balance ledger, as stored (drafts live in models.drafts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.drawdown import LedgerEntry, LedgerEntryType
from billing.invoices import Invoice, InvoiceStatus
from models.codec import decode, to_json
from models.ids import new_id
from models.invoices import InvoiceRow, LedgerEntryRow
from models.store.bound_rows import in_chunks
from models.store.pages import check_first, cursor_of, page
from models.tables import table

invoices = table(InvoiceRow)
ledger = table(LedgerEntryRow)


@dataclass(frozen=True)
class StoredInvoice:
    id: str
    invoice: Invoice
    late_events: int
    finalized_at: datetime
    voided_at: datetime | None
    replaces_invoice_id: str | None


def _stored(row: Any) -> StoredInvoice:
    invoice = decode(Invoice, row.document)
    return StoredInvoice(
        id=row.id,
        invoice=invoice,
        late_events=row.late_events,
        finalized_at=row.finalized_at,
        voided_at=row.voided_at,
        replaces_invoice_id=row.replaces_invoice_id,
    )


async def invoice_by_id(
    conn: AsyncConnection, org_id: str, invoice_id: str, customer_id: str | None = None
) -> StoredInvoice | None:
    """A stored invoice of ``org_id`` (and of ``customer_id`` when given), or None."""
    query = select(invoices).where((invoices.c.id == invoice_id) & (invoices.c.org_id == org_id))
    if customer_id is not None:
        query = query.where(invoices.c.customer_id == customer_id)
    row = (await conn.execute(query)).first()
    return None if row is None else _stored(row)


async def invoices_page(
    conn: AsyncConnection, org_id: str, customer_id: str, first: int, after: str | None
) -> tuple[list[tuple[str, StoredInvoice]], bool]:
    """A customer's stored invoices, newest period first."""
    query = select(invoices).where(
        (invoices.c.org_id == org_id) & (invoices.c.customer_id == customer_id)
    )
    found = await page(
        conn, query, invoices.c.starting_at, invoices.c.id, first, after, newest_first=True
    )
    return [(cursor, _stored(row)) for cursor, row in found.rows], found.has_next


async def first_invoice_pages(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str], first: int
) -> dict[str, tuple[list[tuple[str, StoredInvoice]], bool]]:
    """The first page of each customer's stored invoices (newest period first), in one
    query for any number of customers."""
    check_first(first)
    rank = (
        func.row_number()
        .over(
            partition_by=invoices.c.customer_id,
            order_by=(invoices.c.starting_at.desc(), invoices.c.id.desc()),
        )
        .label("rank")
    )
    ranked = (
        select(invoices, rank)
        .where(
            (invoices.c.org_id == org_id) & invoices.c.customer_id.in_(sorted(set(customer_ids)))
        )
        .subquery()
    )
    query = select(ranked).where(ranked.c.rank <= first + 1).order_by(ranked.c.rank)
    rows: dict[str, list[Any]] = {c: [] for c in customer_ids}
    for row in await conn.execute(query):
        rows[row.customer_id].append(row)
    return {
        customer_id: (
            [(cursor_of(r.starting_at, r.id), _stored(r)) for r in found[:first]],
            len(found) > first,
        )
        for customer_id, found in rows.items()
    }


async def closed_periods(
    conn: AsyncConnection,
    org_id: str,
    contract_ids: Sequence[str],
    *,
    include_void: bool = False,
) -> set[tuple[str, datetime]]:
    """(contract id, period start) of every period with a finalized invoice (those periods
    have no draft any more); with ``include_void``, also those whose invoice was voided
    (the finalizer leaves them to ``regenerateInvoice``)."""
    found: set[tuple[str, datetime]] = set()
    for chunk in in_chunks(contract_ids):
        query = select(invoices.c.contract_id, invoices.c.starting_at).where(
            (invoices.c.org_id == org_id) & invoices.c.contract_id.in_(chunk)
        )
        if not include_void:
            query = query.where(invoices.c.status != InvoiceStatus.VOID.value)
        found.update((contract_id, start) for contract_id, start in await conn.execute(query))
    return found


async def ledgers_of(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str]
) -> dict[str, list[LedgerEntry]]:
    """Per balance segment id, the recorded ledger entries of these customers, in order."""
    result: dict[str, list[LedgerEntry]] = {}
    if not customer_ids:
        return result
    query = (
        select(ledger)
        .where((ledger.c.org_id == org_id) & ledger.c.customer_id.in_(sorted(set(customer_ids))))
        .order_by(ledger.c.timestamp, ledger.c.id)
    )
    for row in await conn.execute(query):
        result.setdefault(row.segment_id, []).append(
            LedgerEntry(
                row.segment_id, LedgerEntryType(row.type), row.amount, row.timestamp, row.invoice_id
            )
        )
    return result


async def store_invoice(
    conn: AsyncConnection,
    org_id: str,
    invoice: Invoice,
    entries: Sequence[LedgerEntry],
    now: datetime,
    *,
    invoice_id: str,
    usage_cutoff: datetime,
    late_events: int = 0,
    replaces_invoice_id: str | None = None,
) -> StoredInvoice:
    """Store a finalized invoice and its ledger entries (one transaction with its cause)."""
    await conn.execute(
        invoices.insert().values(
            id=invoice_id,
            org_id=org_id,
            customer_id=invoice.customer_id,
            contract_id=invoice.contract_id,
            starting_at=invoice.starting_at,
            ending_before=invoice.ending_before,
            status=invoice.status.value,
            total=invoice.total,
            document=to_json(invoice),
            late_events=late_events,
            usage_cutoff=usage_cutoff,
            replaces_invoice_id=replaces_invoice_id,
            finalized_at=now,
        )
    )
    await add_ledger_entries(conn, org_id, invoice.customer_id, invoice.contract_id, entries)
    return StoredInvoice(invoice_id, invoice, late_events, now, None, replaces_invoice_id)


async def add_ledger_entries(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    contract_id: str,
    entries: Sequence[LedgerEntry],
) -> None:
    if entries:
        await conn.execute(
            ledger.insert(),
            [
                {
                    "id": new_id("led"),
                    "org_id": org_id,
                    "customer_id": customer_id,
                    "contract_id": contract_id,
                    "segment_id": e.segment_id,
                    "type": e.type.value,
                    "amount": e.amount,
                    "timestamp": e.timestamp,
                    "invoice_id": e.invoice_id,
                }
                for e in entries
            ],
        )


async def mark_void(conn: AsyncConnection, invoice_id: str, now: datetime) -> bool:
    """Void a finalized invoice; False if it was not finalized (already void)."""
    void = InvoiceStatus.VOID.value
    row = (await conn.execute(select(invoices.c.document).where(invoices.c.id == invoice_id))).one()
    result = await conn.execute(
        update(invoices)
        .where((invoices.c.id == invoice_id) & (invoices.c.status == InvoiceStatus.FINALIZED.value))
        .values(status=void, voided_at=now, document={**row.document, "status": void})
    )
    return bool(result.rowcount)
