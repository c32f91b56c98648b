"""Stripe (SPEC §11): the organization's settings and an invoice's life at Stripe."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from schema.enums import BillingProvider, PaymentStatus, SyncStatus


@strawberry.type(description="The organization's Stripe account, as Meterline reaches it.")
class StripeSettings:
    secret_key_hint: str = strawberry.field(
        description="The secret key's kind and last 4 characters (the key is never shown)."
    )
    webhook_secret_set: bool = strawberry.field(
        description="Whether a webhook signing secret is set: Stripe's payment events "
        "(POST /webhooks/stripe) are only accepted when it is."
    )
    api_base: str | None = strawberry.field(description="null: Stripe itself.")
    send_zero_total_invoices: bool
    updated_at: datetime


@strawberry.input(
    description="What to change in the Stripe settings: an omitted field keeps its value."
)
class StripeSettingsInput:
    secret_key: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A secret (sk_…) or restricted (rk_…) key; required the first time.",
    )
    webhook_signing_secret: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The signing secret (whsec_…) of the Stripe webhook endpoint; null "
        "removes it (Stripe's events are then refused).",
    )
    api_base: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Another Stripe API address (a test server); null: Stripe itself.",
    )
    send_zero_total_invoices: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Push invoices whose total is zero too (null, like omitted, keeps it).",
    )


@strawberry.type(
    description="A finalized invoice at its billing provider: the push and the payment "
    "status the provider reports."
)
class InvoiceBillingProvider:
    provider: BillingProvider
    status: SyncStatus = strawberry.field(
        description="PENDING until pushed (and between retries); BILLING_PROVIDER_ERROR when "
        "retries ran out or cannot help (retryInvoiceSync starts again)."
    )
    payment_status: PaymentStatus
    provider_invoice_id: str | None
    provider_total: Decimal | None = strawberry.field(
        description="The provider's total before tax, in the invoice's currency."
    )
    total_mismatch: bool = strawberry.field(
        description="The provider's total differs from the invoice's."
    )
    attempts: int = strawberry.field(description="Failed attempts so far.")
    next_attempt_at: datetime | None
    error: str | None = strawberry.field(
        description="Why the last attempt failed, or why the invoice was not sent "
        "(null for customer tokens)."
    )
    synced_at: datetime | None
    updated_at: datetime
