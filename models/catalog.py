"""Products, rate cards and their time-versioned rates (SPEC §3, §4).

Each row keeps the billing core's value as a JSON document (``models.codec``) next to the
columns queries filter on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class ProductRow(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    name: str = Field(max_length=200)
    type: str = Field(max_length=20)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateCardRow(SQLModel, table=True):
    __tablename__ = "rate_cards"
    __table_args__ = (Index("ix_rate_cards_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    name: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RateRow(SQLModel, table=True):
    __tablename__ = "rates"
    __table_args__ = (Index("ix_rates_card", "rate_card_id", "product_id"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    rate_card_id: str = Field(foreign_key="rate_cards.id", max_length=40)
    product_id: str = Field(foreign_key="products.id", max_length=40)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)


class UniquenessKey(SQLModel, table=True):
    """SPEC §0: a second create with the same key for the same kind is a CONFLICT."""

    __tablename__ = "uniqueness_keys"

    org_id: str = Field(primary_key=True, foreign_key="organizations.id", max_length=40)
    kind: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=128)
    object_id: str = Field(max_length=40)
