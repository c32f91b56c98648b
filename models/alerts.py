"""Alerts (SPEC §7): the rule as the core's document, and state per (alert, customer,
group values)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_org_customer", "org_id", "customer_id"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    customer_id: str | None = Field(default=None, foreign_key="customers.id", max_length=40)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(sa_type=UTCDateTime)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AlertStateRow(SQLModel, table=True):
    __tablename__ = "alert_states"

    org_id: str = Field(primary_key=True, max_length=40)
    alert_id: str = Field(primary_key=True, foreign_key="alerts.id", max_length=40)
    customer_id: str = Field(primary_key=True, foreign_key="customers.id", max_length=40)
    group_hash: str = Field(primary_key=True, max_length=32)
    group_json: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=20)
    latched: bool = Field(default=False)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class AlertEvaluationRow(SQLModel, table=True):
    """What a customer's alerts still have to see: ``requests`` counts the changes asked to
    be evaluated, ``evaluated`` the count the last finished evaluation had seen. The
    database keeps the request, so a job lost with Redis is swept up again."""

    __tablename__ = "alert_evaluations"
    __table_args__ = (Index("ix_alert_evaluations_requested", "requested_at"),)

    org_id: str = Field(primary_key=True, max_length=40)
    customer_id: str = Field(primary_key=True, foreign_key="customers.id", max_length=40)
    requests: int = Field(default=0, sa_type=BigInteger)
    evaluated: int = Field(default=0, sa_type=BigInteger)
    requested_at: datetime = Field(sa_type=UTCDateTime)
