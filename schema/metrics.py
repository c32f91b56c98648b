"""Billable metrics (SPEC §2) as GraphQL types and inputs."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.enums import AggregationType


@strawberry.type
class EventTypeFilter:
    in_values: list[str] | None
    not_in_values: list[str] | None


@strawberry.type
class PropertyFilter:
    name: str
    exists: bool | None
    in_values: list[str] | None
    not_in_values: list[str] | None


@strawberry.type(description="What to count, and how (immutable; archivable).")
class BillableMetric:
    id: strawberry.ID
    name: str
    aggregation_type: AggregationType
    aggregation_key: str | None
    event_type_filter: EventTypeFilter
    property_filters: list[PropertyFilter]
    group_keys: list[list[str]]
    created_at: datetime
    archived_at: datetime | None


@strawberry.input
class EventTypeFilterInput:
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


@strawberry.input
class PropertyFilterInput:
    name: str
    exists: bool | None = None
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


@strawberry.input
class CreateBillableMetricInput:
    name: str
    aggregation_type: AggregationType
    aggregation_key: str | None = None
    event_type_filter: EventTypeFilterInput | None = None
    property_filters: list[PropertyFilterInput] = strawberry.field(default_factory=list)
    group_keys: list[list[str]] = strawberry.field(default_factory=list)
    uniqueness_key: str | None = None
