"""Customers and the keys events may name them by (their id and ingest aliases)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    name: str = Field(max_length=200)
    custom_fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    stripe_customer_id: str | None = Field(default=None, max_length=128)
    stripe_collection_method: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CustomerIngestKey(SQLModel, table=True):
    """One row per name an event may use for a live customer: its id and each alias."""

    __tablename__ = "customer_ingest_keys"
    __table_args__ = (Index("ix_ingest_keys_customer", "customer_id"),)

    org_id: str = Field(primary_key=True, foreign_key="organizations.id", max_length=40)
    key: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(foreign_key="customers.id", max_length=40)
    is_alias: bool = Field(default=True)
