"""Billable metrics: create (validated by the billing core), list, convert to definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import (
    AggregationType,
    EventTypeFilter,
    MetricDefinition,
    PropertyFilter,
    validate_metric,
)
from models.ids import new_id
from models.metrics import BillableMetric
from models.store import dialect
from models.tables import table
from models.usage import UsageEventRow

metrics = table(BillableMetric)
events = table(UsageEventRow)


def _tuple(values: Any) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def definition_from_json(metric_id: str, name: str, data: dict[str, Any]) -> MetricDefinition:
    etf = data.get("event_type_filter") or {}
    return MetricDefinition(
        id=metric_id,
        name=name,
        aggregation_type=AggregationType(data["aggregation_type"]),
        event_type_filter=EventTypeFilter(
            _tuple(etf.get("in_values")), _tuple(etf.get("not_in_values"))
        ),
        property_filters=tuple(
            PropertyFilter(
                name=pf["name"],
                exists=pf.get("exists"),
                in_values=_tuple(pf.get("in_values")),
                not_in_values=_tuple(pf.get("not_in_values")),
            )
            for pf in data.get("property_filters") or ()
        ),
        aggregation_key=data.get("aggregation_key"),
        group_keys=tuple(tuple(k) for k in data.get("group_keys") or ()),
    )


def definition_to_json(metric: MetricDefinition) -> dict[str, Any]:
    def lst(values: tuple[str, ...] | None) -> list[str] | None:
        return None if values is None else list(values)

    return {
        "aggregation_type": metric.aggregation_type.value,
        "event_type_filter": {
            "in_values": lst(metric.event_type_filter.in_values),
            "not_in_values": lst(metric.event_type_filter.not_in_values),
        },
        "property_filters": [
            {
                "name": pf.name,
                "exists": pf.exists,
                "in_values": lst(pf.in_values),
                "not_in_values": lst(pf.not_in_values),
            }
            for pf in metric.property_filters
        ],
        "aggregation_key": metric.aggregation_key,
        "group_keys": [list(k) for k in metric.group_keys],
    }


async def create_metric(
    conn: AsyncConnection, org_id: str, metric: MetricDefinition, now: datetime
) -> str:
    """Validate and store a metric; returns its id. Enqueue ``backfill_metric`` after commit.

    Takes the organization's exclusive lock so that the back-fill watermark (the greatest
    event id stored so far) covers every event that will not be rated by ingest itself.
    """
    validate_metric(metric)
    await dialect.lock_organization(conn, org_id, exclusive=True)
    metric_id = new_id("bm")
    watermark = await conn.scalar(
        select(func.coalesce(func.max(events.c.id), 0)).where(events.c.org_id == org_id)
    )
    await conn.execute(
        metrics.insert().values(
            id=metric_id,
            org_id=org_id,
            name=metric.name,
            definition=definition_to_json(metric),
            created_at=now,
            backfill_watermark=int(watermark or 0),
        )
    )
    return metric_id


@dataclass(frozen=True)
class StoredMetric:
    definition: MetricDefinition
    backfill_watermark: int
    backfilled: bool

    def rated_by_ingest(self, event_id: int) -> bool:
        """Whether ingest rated this event for the metric (it existed when it arrived)."""
        return event_id > self.backfill_watermark


async def stored_metrics(conn: AsyncConnection, org_id: str) -> list[StoredMetric]:
    """The organization's live metrics in creation order."""
    query = (
        select(metrics)
        .where((metrics.c.org_id == org_id) & metrics.c.archived_at.is_(None))
        .order_by(metrics.c.created_at, metrics.c.id)
    )
    return [
        StoredMetric(
            definition_from_json(r.id, r.name, r.definition),
            r.backfill_watermark,
            r.backfilled_at is not None,
        )
        for r in await conn.execute(query)
    ]


async def active_metrics(conn: AsyncConnection, org_id: str) -> list[MetricDefinition]:
    return [m.definition for m in await stored_metrics(conn, org_id)]


async def archive_metric(conn: AsyncConnection, org_id: str, metric_id: str, now: datetime) -> bool:
    query = update(metrics).where(
        (metrics.c.id == metric_id) & (metrics.c.org_id == org_id) & metrics.c.archived_at.is_(None)
    )
    return bool((await conn.execute(query.values(archived_at=now))).rowcount)
