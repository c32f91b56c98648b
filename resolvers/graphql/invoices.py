"""Stored invoices and cost previews (drafts are fields of the customer)."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.errors import ValidationError
from billing.events import Rejection, normalize_properties
from billing.metering import UsageEvent
from billing.preview import PreviewMode
from models import finalization
from models.drafts import preview_customer
from models.store.customers import check_customer
from models.store.invoices import invoice_by_id
from notifications.catalog import EventType, invoice_changed
from resolvers.graphql.context import (
    Context,
    mutation,
    not_found,
    read,
    reader,
    require,
    require_customer,
)
from resolvers.graphql.loaders import draft_view, stored_invoice_view
from schema.events import EventInput
from schema.invoices import CostPreview, Invoice, InvoicePreview, LineDelta
from schema.views import view

MAX_PREVIEW_EVENTS = 1000


async def invoice(info: Info[Context, Any], id: strawberry.ID) -> Invoice:
    """A finalized or voided invoice (a customer token sees its customer's only)."""
    principal = reader(info)
    async with read(info) as conn:
        found = await invoice_by_id(
            conn, principal.org_id, str(id), customer_id=principal.customer_id
        )
    if found is None:
        raise not_found("invoice", id)
    return stored_invoice_view(found)


def _events(customer_id: str, events: list[EventInput]) -> list[UsageEvent]:
    if len(events) > MAX_PREVIEW_EVENTS:
        raise ValidationError("events", f"at most {MAX_PREVIEW_EVENTS} events")
    result = []
    for index, event in enumerate(events):
        properties = normalize_properties(event.properties or {})
        if isinstance(properties, Rejection):
            raise ValidationError(f"events[{index}].properties", properties.message)
        result.append(
            UsageEvent(
                event.transaction_id, customer_id, event.event_type, event.timestamp, properties
            )
        )
    return result


async def cost_preview(
    info: Info[Context, Any],
    customer_id: strawberry.ID,
    events: list[EventInput],
    mode: PreviewMode = PreviewMode.MERGE,
) -> CostPreview:
    """Drafts with hypothetical events added (merge) or instead of the period's (replace)."""
    principal = require_customer(info, str(customer_id))
    hypothetical = _events(str(customer_id), events)
    async with read(info) as conn:
        await check_customer(conn, principal.org_id, str(customer_id))
        previews = await preview_customer(
            conn,
            principal.org_id,
            str(customer_id),
            hypothetical,
            mode,
            info.context.services.clock(),
            await info.context.loaders.grace(conn),
        )
    return CostPreview(
        mode=mode,
        invoices=[
            InvoicePreview(
                current=draft_view(p.current),
                preview=draft_view(p.preview),
                lines=[view(LineDelta, d) for d in p.diff.lines],
                subtotal_delta=p.diff.subtotal_delta,
                total_delta=p.diff.total_delta,
            )
            for p in previews
        ],
    )


async def void_invoice(info: Info[Context, Any], id: strawberry.ID) -> Invoice:
    """Void a finalized invoice: the balances it drew are restored (``void_restore``)."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        stored = await finalization.void_invoice(conn, principal.org_id, str(id), now)
        await audit("invoice", stored.id, {"status": stored.invoice.status.value})
        await audit.notify(
            invoice_changed(EventType.INVOICE_VOIDED, stored.id, stored.invoice, stored.late_events)
        )
        await audit.changed(stored.invoice.customer_id)
        audit.outbox.sync_invoices([(stored.id, now)])
    return stored_invoice_view(stored)


async def regenerate_invoice(info: Info[Context, Any], id: strawberry.ID) -> Invoice:
    """A new finalized invoice for a voided invoice's period, re-rated with current data
    and linked to the old one (``replacesInvoiceId``)."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        stored = await finalization.regenerate_invoice(conn, principal.org_id, str(id), now)
        await audit("invoice", stored.id, {"replaces_invoice_id": str(id)})
        await audit.notify(
            invoice_changed(
                EventType.INVOICE_FINALIZED,
                stored.id,
                stored.invoice,
                0,
                stored.replaces_invoice_id,
            )
        )
        await audit.changed(stored.invoice.customer_id)
        audit.outbox.sync_invoices([(stored.id, now)])
    return stored_invoice_view(stored)
