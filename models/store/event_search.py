"""Event search by transaction ids: what happened to each event and why (SPEC §1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import match_event
from models.store import rollups as rollup_store
from models.store.metrics import list_metrics
from models.tables import table
from models.usage import EventDedupe, UsageEventRow

dedupe = table(EventDedupe)
events = table(UsageEventRow)
MAX_SEARCH = 100


@dataclass(frozen=True)
class MetricMatch:
    metric_id: str
    metric_name: str
    matched: bool
    reason: str | None


@dataclass(frozen=True)
class FoundEvent:
    transaction_id: str
    customer_ref: str
    customer_id: str | None
    event_type: str
    timestamp: datetime
    properties: dict[str, str]
    received_at: datetime
    is_duplicate: bool
    duplicate_count: int
    metrics: tuple[MetricMatch, ...]

    @property
    def matched_metric_ids(self) -> list[str]:
        return [m.metric_id for m in self.metrics if m.matched]


async def search_events(
    conn: AsyncConnection, org_id: str, transaction_ids: Sequence[str]
) -> list[FoundEvent]:
    """Stored events of the organization with these transaction ids (at most 100).

    ``is_duplicate`` says the transaction id was sent again after it was stored (the
    copies were not stored). Each live metric is listed as matched or with the reason it
    did not match; an event with no known customer matches none.
    """
    wanted = sorted(set(transaction_ids))[:MAX_SEARCH]
    if not wanted:
        return []
    query = (
        select(events, dedupe.c.duplicate_count)
        .join(
            dedupe,
            (dedupe.c.org_id == events.c.org_id)
            & (dedupe.c.transaction_id == events.c.transaction_id),
            isouter=True,
        )
        .where((events.c.org_id == org_id) & events.c.transaction_id.in_(wanted))
        .order_by(events.c.id)
    )
    rows = list(await conn.execute(query))
    known = await list_metrics(conn, org_id)
    found = []
    for row in rows:
        event = rollup_store.event_from_row(row)
        matches = []
        for stored in known:
            metric = stored.definition
            if row.customer_id is None:
                result = MetricMatch(metric.id, metric.name, False, "customer is unknown")
            else:
                judged = match_event(metric, event)
                result = MetricMatch(metric.id, metric.name, judged.matched, judged.reason)
            matches.append(result)
        duplicates = int(row.duplicate_count or 0)
        found.append(
            FoundEvent(
                transaction_id=row.transaction_id,
                customer_ref=row.customer_ref,
                customer_id=row.customer_id,
                event_type=row.event_type,
                timestamp=row.timestamp,
                properties=dict(row.properties),
                received_at=row.received_at,
                is_duplicate=duplicates > 0,
                duplicate_count=duplicates,
                metrics=tuple(matches),
            )
        )
    return found
