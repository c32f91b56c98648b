"""Billable metric queries and mutations."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.errors import BillingError
from billing.metering import EventTypeFilter as CoreEventTypeFilter
from billing.metering import MetricDefinition
from billing.metering import PropertyFilter as CorePropertyFilter
from models.codec import to_json
from models.store.audit import record_audit
from models.store.metrics import MetricRecord, archive_metric, create_metric, list_metrics
from notifications.queue import enqueue_backfill
from resolvers.graphql.context import Context, require
from schema.errors import from_billing_error, graphql_error
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
    async with info.context.services.db.read() as conn:
        found = await list_metrics(conn, principal.org_id, include_archived=include_archived)
    return [_view(record) for record in found]


async def create_billable_metric(
    info: Info[Context, Any], input: CreateBillableMetricInput
) -> BillableMetric:
    principal = require(info, "admin")
    services = info.context.services
    now = services.clock()
    definition = _definition(input)
    try:
        async with services.db.write() as conn:
            metric_id = await create_metric(
                conn, principal.org_id, definition, now, input.uniqueness_key
            )
            await record_audit(
                conn,
                principal.org_id,
                actor=principal.key_id,
                action="createBillableMetric",
                object_kind="billable_metric",
                object_id=metric_id,
                changes=to_json(definition),
                now=now,
            )
            (record,) = await list_metrics(conn, principal.org_id, metric_id=metric_id)
    except BillingError as error:
        raise from_billing_error(error) from error
    await enqueue_backfill(services.redis, metric_id)
    return _view(record)


async def archive_billable_metric(info: Info[Context, Any], id: strawberry.ID) -> BillableMetric:
    principal = require(info, "admin")
    services = info.context.services
    now = services.clock()
    async with services.db.write() as conn:
        if not await archive_metric(conn, principal.org_id, str(id), now):
            raise graphql_error("NOT_FOUND", f"no live billable metric {id}")
        await record_audit(
            conn,
            principal.org_id,
            actor=principal.key_id,
            action="archiveBillableMetric",
            object_kind="billable_metric",
            object_id=str(id),
            changes={"archived_at": now.isoformat()},
            now=now,
        )
        (record,) = await list_metrics(
            conn, principal.org_id, include_archived=True, metric_id=str(id)
        )
    return _view(record)
