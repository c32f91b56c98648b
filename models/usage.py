"""Usage events, their dedupe keys, and the rollups drafts are read from.

Rollups are kept at three grains (hour, UTC day, UTC calendar month), all written at ingest
in the same transaction, so a window read costs O(groups), not O(hours × groups).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, SmallInteger, Text
from sqlmodel import Field, SQLModel

from models.types import ExactDecimal, UTCDateTime

EventId = BigInteger().with_variant(Integer(), "sqlite")


class EventDedupe(SQLModel, table=True):
    """The unique constraint that makes ingest exactly-once per transaction id."""

    __tablename__ = "event_dedupe"
    __table_args__ = (Index("ix_event_dedupe_received", "received_at"),)

    org_id: str = Field(primary_key=True, max_length=40)
    transaction_id: str = Field(primary_key=True, max_length=128)
    received_at: datetime = Field(sa_type=UTCDateTime)
    duplicate_count: int = Field(default=0)


class UsageEventRow(SQLModel, table=True):
    __tablename__ = "usage_events"
    __table_args__ = (
        Index("ix_usage_events_customer_ts", "org_id", "customer_id", "timestamp"),
        Index("ix_usage_events_tx", "org_id", "transaction_id"),
        Index("ix_usage_events_ref", "org_id", "customer_ref"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=EventId)
    org_id: str = Field(max_length=40)
    transaction_id: str = Field(max_length=128)
    customer_ref: str = Field(max_length=128)
    customer_id: str | None = Field(default=None, max_length=40)
    event_type: str = Field(max_length=128)
    timestamp: datetime = Field(sa_type=UTCDateTime)
    properties: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(sa_type=UTCDateTime)


class UsageRollup(SQLModel, table=True):
    """Mergeable figures of one (customer, metric, grain, bucket, group values).

    ``grain`` is 0 (hour), 1 (UTC day) or 2 (UTC calendar month); ``bucket`` is the start
    of the hour, day or month.
    """

    __tablename__ = "usage_rollups"

    org_id: str = Field(primary_key=True, max_length=40)
    customer_id: str = Field(primary_key=True, max_length=40)
    metric_id: str = Field(primary_key=True, max_length=40)
    grain: int = Field(primary_key=True, sa_type=SmallInteger)
    bucket: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    group_hash: str = Field(primary_key=True, max_length=32)
    group_json: str = Field(sa_column=Column(Text, nullable=False))
    count: int = Field(default=0, sa_type=BigInteger)
    sum: Decimal = Field(default=Decimal(0), sa_type=ExactDecimal)
    max: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    latest_ts_us: int | None = Field(default=None, sa_type=BigInteger)
    latest_tx: str | None = Field(default=None, max_length=128)
    latest_value: Decimal | None = Field(default=None, sa_type=ExactDecimal)


class UsageDistinct(SQLModel, table=True):
    """Distinct ``aggregation_key`` values for ``unique`` metrics, per rollup cell."""

    __tablename__ = "usage_distinct"

    org_id: str = Field(primary_key=True, max_length=40)
    customer_id: str = Field(primary_key=True, max_length=40)
    metric_id: str = Field(primary_key=True, max_length=40)
    grain: int = Field(primary_key=True, sa_type=SmallInteger)
    bucket: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    group_hash: str = Field(primary_key=True, max_length=32)
    value_hash: str = Field(primary_key=True, max_length=32)
    group_json: str = Field(sa_column=Column(Text, nullable=False))
    value: str = Field(max_length=4096)
