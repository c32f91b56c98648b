"""Finalized invoices (frozen documents) and the balance ledger (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, text
from sqlmodel import Field, SQLModel

from models.types import ExactDecimal, UTCDateTime


class InvoiceRow(SQLModel, table=True):
    """One finalized (or voided) invoice; ``document`` is the core's frozen ``Invoice``.
    ``usage_cutoff``: events that arrived after it are late (period end + grace, or the
    regeneration time); ``late_events`` counts them. At most one non-void invoice per
    (contract, period)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_customer", "org_id", "customer_id", "starting_at"),
        Index(
            "ux_invoices_live_period",
            "contract_id",
            "starting_at",
            unique=True,
            sqlite_where=text("status <> 'void'"),
            postgresql_where=text("status <> 'void'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    customer_id: str = Field(foreign_key="customers.id", max_length=40)
    contract_id: str = Field(foreign_key="contracts.id", max_length=40)
    starting_at: datetime = Field(sa_type=UTCDateTime)
    ending_before: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(max_length=20)
    total: Decimal = Field(sa_type=ExactDecimal)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    late_events: int = Field(default=0)
    usage_cutoff: datetime = Field(sa_type=UTCDateTime)
    replaces_invoice_id: str | None = Field(default=None, max_length=40)
    finalized_at: datetime = Field(sa_type=UTCDateTime)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LedgerEntryRow(SQLModel, table=True):
    """A recorded change of one balance segment (``segment_start`` is implied by the
    contract's terms and never stored)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_customer", "org_id", "customer_id", "segment_id"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    customer_id: str = Field(foreign_key="customers.id", max_length=40)
    contract_id: str = Field(foreign_key="contracts.id", max_length=40)
    segment_id: str = Field(max_length=80)
    type: str = Field(max_length=40)
    amount: Decimal = Field(sa_type=ExactDecimal)
    timestamp: datetime = Field(sa_type=UTCDateTime)
    invoice_id: str | None = Field(default=None, max_length=40)
