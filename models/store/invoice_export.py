"""Stored invoices of an organization for export, page by page (keyset, never all at once)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.invoices import Invoice, InvoiceStatus
from models.codec import decode
from models.customers import Customer
from models.store.invoices import invoices
from models.tables import table

customers = table(Customer)

ExportKey = tuple[str, datetime, str]
"""Where a page ends: (customer id, period start, invoice id), the export's order."""


@dataclass(frozen=True)
class ExportedInvoice:
    id: str
    customer_name: str
    invoice: Invoice
    late_events: int
    finalized_at: datetime
    voided_at: datetime | None
    replaces_invoice_id: str | None

    @property
    def key(self) -> ExportKey:
        return (self.invoice.customer_id, self.invoice.starting_at, self.id)


async def invoices_to_export(
    conn: AsyncConnection, org_id: str, since: datetime, after: ExportKey | None, limit: int
) -> list[ExportedInvoice]:
    """Up to ``limit`` finalized or voided invoices of ``org_id`` whose period starts at or
    after ``since``, after ``after``, ordered by customer, period start and id (the order
    of the ``(org, customer, period start)`` index, so each page is a range scan)."""
    query = (
        select(invoices, customers.c.name.label("customer_name"))
        .join(customers, customers.c.id == invoices.c.customer_id)
        .where(
            (invoices.c.org_id == org_id)
            & (invoices.c.starting_at >= since)
            & invoices.c.status.in_([InvoiceStatus.FINALIZED.value, InvoiceStatus.VOID.value])
        )
        .order_by(invoices.c.customer_id, invoices.c.starting_at, invoices.c.id)
        .limit(limit)
    )
    if after is not None:  # a tuple compared to a tuple_ binds with the columns' types
        query = query.where(
            tuple_(invoices.c.customer_id, invoices.c.starting_at, invoices.c.id) > after
        )
    return [
        ExportedInvoice(
            id=row.id,
            customer_name=row.customer_name,
            invoice=decode(Invoice, row.document),
            late_events=row.late_events,
            finalized_at=row.finalized_at,
            voided_at=row.voided_at,
            replaces_invoice_id=row.replaces_invoice_id,
        )
        for row in await conn.execute(query)
    ]
