"""Stripe (SPEC §11): an organization's settings, the push of each finalized invoice and
the Stripe events already handled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class StripeSettingsRow(SQLModel, table=True):
    """``api_base`` None means Stripe itself; ``send_zero_total`` pushes invoices whose
    total is zero too."""

    __tablename__ = "stripe_settings"

    org_id: str = Field(primary_key=True, foreign_key="organizations.id", max_length=40)
    secret_key: str = Field(max_length=255)
    webhook_secret: str | None = Field(default=None, max_length=255)
    api_base: str | None = Field(default=None, max_length=300)
    send_zero_total: bool = Field(default=False)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class InvoiceSyncRow(SQLModel, table=True):
    """The push of one finalized invoice to Stripe and its payment status there.

    The Stripe customer and collection method are the customer's link when the Stripe
    invoice is created (None before: a link fixed after a failure is taken);
    ``days_until_due`` is the contract's payment terms at finalization. ``items`` maps a
    line's key to the Stripe invoice item made for it; ``key_generation`` is part of the
    idempotency keys and moves on with each ``retryInvoiceSync``. ``next_attempt_at``: when
    work on it is due (a push, a retry, voiding it at Stripe), None when there is none;
    ``leased_until`` and ``lease_token`` fence the one worker doing it."""

    __tablename__ = "invoice_syncs"
    __table_args__ = (
        Index("ix_invoice_syncs_due", "next_attempt_at"),
        Index("ix_invoice_syncs_stripe", "org_id", "stripe_invoice_id"),
    )

    invoice_id: str = Field(primary_key=True, foreign_key="invoices.id", max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    customer_id: str = Field(foreign_key="customers.id", max_length=40)
    days_until_due: int
    stripe_customer_id: str | None = Field(default=None, max_length=128)
    collection_method: str | None = Field(default=None, max_length=32)
    key_generation: int = Field(default=0)
    status: str = Field(max_length=30)
    payment_status: str = Field(max_length=20)
    stripe_invoice_id: str | None = Field(default=None, max_length=128)
    items: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    stripe_total: int | None = Field(default=None, sa_type=BigInteger)
    total_mismatch: bool = Field(default=False)
    void_requested: bool = Field(default=False)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lease_token: str | None = Field(default=None, max_length=40)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=UTCDateTime)
    synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class StripeEventRow(SQLModel, table=True):
    """A Stripe event already handled (Stripe delivers at least once)."""

    __tablename__ = "stripe_events"

    org_id: str = Field(primary_key=True, foreign_key="organizations.id", max_length=40)
    event_id: str = Field(primary_key=True, max_length=128)
    type: str = Field(max_length=100)
    received_at: datetime = Field(sa_type=UTCDateTime)
