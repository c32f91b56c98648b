"""Back-fill: a metric created after events arrived counts those events (SPEC §2)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.events import DEDUPE_WINDOW
from models.metrics import BillableMetric
from models.store import dialect
from models.store import rollups as rollup_store
from models.store.metrics import metric_from_document
from models.tables import table
from models.usage import UsageEventRow

metrics = table(BillableMetric)
events = table(UsageEventRow)
BATCH = 2000


async def backfill_metric(
    conn: AsyncConnection, metric_id: str, now: datetime, lookback: timedelta = DEDUPE_WINDOW
) -> int | None:
    """Roll up, for one metric, every stored event it did not see at ingest.

    Covers events with id ≤ the metric's watermark, a known customer and a timestamp in the
    last ``lookback`` (34 days; every open period lies inside it). Runs at most once per
    metric: the ``backfilled_at`` mark is set in the same transaction, so a retried job
    does nothing. Returns the number of events read, or None if there was nothing to do.
    """
    row = (await conn.execute(select(metrics).where(metrics.c.id == metric_id))).first()
    if row is None or row.backfilled_at is not None:
        return None
    await dialect.lock_organization(conn, row.org_id, exclusive=True)
    definition = metric_from_document(row.id, row.definition)
    where = (
        (events.c.org_id == row.org_id)
        & (events.c.id <= row.backfill_watermark)
        & events.c.customer_id.is_not(None)
        & (events.c.timestamp >= now - lookback)
    )
    seen, last_id = 0, 0
    while True:
        query = select(events).where(where & (events.c.id > last_id)).order_by(events.c.id)
        chunk = list(await conn.execute(query.limit(BATCH)))
        if not chunk:
            break
        seen += len(chunk)
        last_id = chunk[-1].id
        await rollup_store.apply_contributions(
            conn,
            row.org_id,
            (
                c
                for r in chunk
                for c in rollup_store.contributions_of(
                    r.customer_id, rollup_store.event_from_row(r), [definition]
                )
            ),
        )
    await conn.execute(update(metrics).where(metrics.c.id == metric_id).values(backfilled_at=now))
    return seen
