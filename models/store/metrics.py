"""Billable metrics: create (validated by the billing core), list, convert to definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import MetricDefinition, validate_metric
from models.codec import decode, to_json
from models.ids import new_id
from models.metrics import BillableMetric
from models.store import dialect
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table
from models.usage import UsageEventRow

metrics = table(BillableMetric)
events = table(UsageEventRow)


_DECODED_LIMIT = 10_000
_decoded: dict[str, MetricDefinition] = {}


def metric_from_document(metric_id: str, document: dict[str, Any]) -> MetricDefinition:
    """A stored metric document (``models.codec``) as the core's definition. Metrics never
    change after creation, so each is decoded once per process (ingest reads them on every
    batch; one definition object also keeps its cached ``rollup_keys``)."""
    found = _decoded.get(metric_id)
    if found is None:
        if len(_decoded) >= _DECODED_LIMIT:
            _decoded.clear()
        found = _decoded[metric_id] = decode(MetricDefinition, {**document, "id": metric_id})
    return found


async def create_metric(
    conn: AsyncConnection,
    org_id: str,
    metric: MetricDefinition,
    now: datetime,
    uniqueness_key: str | None = None,
) -> str:
    """Validate and store a metric; returns its id. Enqueue ``backfill_metric`` after commit.

    Takes the organization's exclusive lock so that the back-fill watermark (the greatest
    event id stored so far) covers every event that will not be rated by ingest itself.
    """
    validate_metric(metric)
    await dialect.lock_organization(conn, org_id, exclusive=True)
    metric_id = new_id("bm")
    await claim_uniqueness_key(conn, org_id, "billable_metric", uniqueness_key, metric_id)
    watermark = await conn.scalar(
        select(func.coalesce(func.max(events.c.id), 0)).where(events.c.org_id == org_id)
    )
    await conn.execute(
        metrics.insert().values(
            id=metric_id,
            org_id=org_id,
            name=metric.name,
            definition=to_json(metric),
            created_at=now,
            backfill_watermark=int(watermark or 0),
        )
    )
    return metric_id


async def active_metrics(conn: AsyncConnection, org_id: str) -> list[MetricDefinition]:
    """The organization's live metric definitions, oldest first."""
    return [record.definition for record in await list_metrics(conn, org_id)]


async def archive_metric(conn: AsyncConnection, org_id: str, metric_id: str, now: datetime) -> bool:
    query = update(metrics).where(
        (metrics.c.id == metric_id) & (metrics.c.org_id == org_id) & metrics.c.archived_at.is_(None)
    )
    return bool((await conn.execute(query.values(archived_at=now))).rowcount)


@dataclass(frozen=True)
class MetricRecord:
    definition: MetricDefinition
    created_at: datetime
    archived_at: datetime | None
    backfill_watermark: int
    backfilled: bool

    def rated_by_ingest(self, event_id: int) -> bool:
        """Whether ingest rated this event for the metric (it existed when it arrived)."""
        return event_id > self.backfill_watermark


async def list_metrics(
    conn: AsyncConnection,
    org_id: str,
    *,
    include_archived: bool = False,
    metric_id: str | None = None,
) -> list[MetricRecord]:
    """The organization's metrics (or the one ``metric_id``), oldest first."""
    where = metrics.c.org_id == org_id
    if not include_archived:
        where &= metrics.c.archived_at.is_(None)
    if metric_id is not None:
        where &= metrics.c.id == metric_id
    query = select(metrics).where(where).order_by(metrics.c.created_at, metrics.c.id)
    return [
        MetricRecord(
            metric_from_document(r.id, r.definition),
            r.created_at,
            r.archived_at,
            r.backfill_watermark,
            r.backfilled_at is not None,
        )
        for r in await conn.execute(query)
    ]
