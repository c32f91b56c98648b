"""The webhook hub's tables (SPEC §10): endpoints, the outbox of messages, one delivery per
(message, endpoint) and every attempt made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class WebhookEndpointRow(SQLModel, table=True):
    """``secret`` signs every attempt; ``previous_secret`` signs alongside it until
    ``previous_secret_until`` (rotation overlap). ``failing_since``: the first failed attempt
    of an unbroken run of failures (None after a success)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org", "org_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, max_length=200)
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookMessageRow(SQLModel, table=True):
    """One outbox message: ``body`` is the exact JSON payload sent to every endpoint (its
    ``id`` is the stable ``webhook-id``)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_org", "org_id", "created_at", "id"),
        Index("ix_webhook_messages_customer", "org_id", "customer_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    type: str = Field(max_length=80)
    customer_id: str | None = Field(default=None, max_length=40)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)


class WebhookDeliveryRow(SQLModel, table=True):
    """A message owed to one endpoint. ``status``: pending | succeeded | failed.
    ``next_attempt_at`` is when a pending delivery is due; ``leased_until`` fences a worker
    sending it now (so two workers never send the same attempt)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id", name="uq_webhook_deliveries_pair"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "status", "updated_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    message_id: str = Field(foreign_key="webhook_messages.id", max_length=40)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=40)
    status: str = Field(max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class WebhookAttemptRow(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: str = Field(primary_key=True, max_length=40)
    org_id: str = Field(foreign_key="organizations.id", max_length=40)
    delivery_id: str = Field(foreign_key="webhook_deliveries.id", max_length=40)
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = Field(default=None)
    duration_ms: int = Field(default=0)
    response_body: str = Field(sa_column=Column(Text, nullable=False))
    error: str | None = Field(default=None, max_length=500)
