"""Billable metric queries and mutations."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.metering import MetricDefinition
from models.codec import to_json
from models.store.metrics import MetricRecord, archive_metric, create_metric, list_metrics
from notifications.queue import enqueue_backfill
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.convert import core_of, plain
from schema.metrics import BillableMetric, CreateBillableMetricInput
from schema.views import view


def _view(record: MetricRecord) -> BillableMetric:
    return view(BillableMetric, record.definition, record)


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
    definition = core_of(MetricDefinition, {**plain(input), "id": ""})
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
