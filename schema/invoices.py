"""Invoices, their lines and cost previews (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from schema.enums import InvoiceStatus, LineType, PreviewMode, UnratedReason
from schema.stripe import InvoiceBillingProvider


@strawberry.type
class TierAmount:
    starting_at: Decimal
    quantity: Decimal
    price: Decimal
    amount: Decimal


@strawberry.type
class InvoiceLine:
    type: LineType
    product_id: strawberry.ID | None
    name: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    group: JSON
    starting_at: datetime
    ending_before: datetime
    tiers: list[TierAmount]
    balance_id: strawberry.ID | None


@strawberry.type(description="Usage (or a subscription) that is not charged, and why.")
class UnratedUsage:
    product_id: strawberry.ID
    group: JSON
    quantity: Decimal
    reason: UnratedReason


@strawberry.type(
    description="An invoice of one contract period. Drafts have no id: they are assembled "
    "on read and always equal what finalization would produce if the period ended now."
)
class Invoice:
    id: strawberry.ID | None
    contract_id: strawberry.ID
    customer_id: strawberry.ID
    currency: str
    starting_at: datetime
    ending_before: datetime
    status: InvoiceStatus
    lines: list[InvoiceLine]
    unrated_usage: list[UnratedUsage]
    subtotal: Decimal
    total: Decimal
    late_events: int
    finalized_at: datetime | None
    voided_at: datetime | None
    replaces_invoice_id: strawberry.ID | None

    @strawberry.field(
        description="The invoice at Stripe: null for drafts and for invoices of contracts "
        "not billed through a provider."
    )
    async def billing_provider(self, info: Info[Any, Any]) -> InvoiceBillingProvider | None:
        if self.id is None:
            return None
        found: InvoiceBillingProvider | None = await info.context.loaders.invoice_syncs.load(
            (str(self.id), self.currency)
        )
        return found


@strawberry.type
class LineDelta:
    type: LineType
    product_id: strawberry.ID | None
    name: str
    group: JSON
    starting_at: datetime
    quantity_before: Decimal
    quantity_after: Decimal
    amount_before: Decimal
    amount_after: Decimal
    amount_delta: Decimal


@strawberry.type(description="One open period: its draft now and with the hypothetical events.")
class InvoicePreview:
    current: Invoice
    preview: Invoice
    lines: list[LineDelta]
    subtotal_delta: Decimal
    total_delta: Decimal


@strawberry.type
class CostPreview:
    mode: PreviewMode
    invoices: list[InvoicePreview]
