"""Billable metric queries and mutations."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.metering import EventTypeFilter as CoreEventTypeFilter
from billing.metering import MetricDefinition
from billing.metering import PropertyFilter as CorePropertyFilter
from models.codec import to_json
from models.store.metrics import MetricRecord, archive_metric, create_metric, list_metrics
from notifications.queue import enqueue_backfill
from resolvers.graphql.context import Context, mutation, not_found, read, require
from schema.metrics import (
    BillableMetric,
    CreateBillableMetricInput,
    EventTypeFilter,
    PropertyFilter,
)


def _optional(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _definition(data: CreateBillableMetricInput) -> MetricDefinition:
    etf = data.event_type_filter
    return MetricDefinition(
        id="",
        name=data.name,
        aggregation_type=data.aggregation_type,
        event_type_filter=CoreEventTypeFilter(
            _optional(etf.in_values) if etf else None,
            _optional(etf.not_in_values) if etf else None,
        ),
        property_filters=tuple(
            CorePropertyFilter(
                pf.name, pf.exists, _optional(pf.in_values), _optional(pf.not_in_values)
            )
            for pf in data.property_filters
        ),
        aggregation_key=data.aggregation_key,
        group_keys=tuple(tuple(keys) for keys in data.group_keys),
    )


def _view(record: MetricRecord) -> BillableMetric:
    m = record.definition

    def listed(values: tuple[str, ...] | None) -> list[str] | None:
        return None if values is None else list(values)

    return BillableMetric(
        id=strawberry.ID(m.id),
        name=m.name,
        aggregation_type=m.aggregation_type,
        aggregation_key=m.aggregation_key,
        event_type_filter=EventTypeFilter(
            in_values=listed(m.event_type_filter.in_values),
            not_in_values=listed(m.event_type_filter.not_in_values),
        ),
        property_filters=[
            PropertyFilter(
                name=pf.name,
                exists=pf.exists,
                in_values=listed(pf.in_values),
                not_in_values=listed(pf.not_in_values),
            )
            for pf in m.property_filters
        ],
        group_keys=[list(keys) for keys in m.group_keys],
        created_at=record.created_at,
        archived_at=record.archived_at,
    )


async def billable_metrics(
    info: Info[Context, Any], include_archived: bool = False
) -> list[BillableMetric]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await list_metrics(conn, principal.org_id, include_archived=include_archived)
    return [_view(record) for record in found]


async def create_billable_metric(
    info: Info[Context, Any], input: CreateBillableMetricInput
) -> BillableMetric:
    principal = require(info, "admin")
    definition = _definition(input)
    async with mutation(info, principal) as (conn, audit):
        metric_id = await create_metric(
            conn, principal.org_id, definition, info.context.services.clock(), input.uniqueness_key
        )
        await audit("billable_metric", metric_id, to_json(definition))
        (record,) = await list_metrics(conn, principal.org_id, metric_id=metric_id)
    await enqueue_backfill(info.context.services.redis, metric_id)
    return _view(record)


async def archive_billable_metric(info: Info[Context, Any], id: strawberry.ID) -> BillableMetric:
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        if not await archive_metric(conn, principal.org_id, str(id), now):
            raise not_found("live billable metric", id)
        await audit("billable_metric", str(id), {"archived_at": now.isoformat()})
        (record,) = await list_metrics(
            conn, principal.org_id, include_archived=True, metric_id=str(id)
        )
    return _view(record)
