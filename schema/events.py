"""Event search and hypothetical events for cost previews (SPEC §1, §6)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON


@strawberry.type
class MetricMatch:
    metric_id: strawberry.ID
    metric_name: str
    matched: bool
    reason: str | None


@strawberry.type(description="A stored event and what became of it.")
class FoundEvent:
    transaction_id: str
    customer_ref: str
    customer_id: strawberry.ID | None
    event_type: str
    timestamp: datetime
    properties: JSON
    received_at: datetime
    is_duplicate: bool = strawberry.field(
        description="The transaction id was sent again after it was stored (copies not stored)."
    )
    duplicate_count: int
    metrics: list[MetricMatch]
    rated: bool = strawberry.field(
        description="Counted by a billable metric that a usage product bills, for a known "
        "customer (its price may still be missing: see a draft's `unratedUsage`)."
    )


@strawberry.input(description="A hypothetical usage event (never stored).")
class EventInput:
    transaction_id: str
    event_type: str
    timestamp: datetime
    properties: JSON | None = None
