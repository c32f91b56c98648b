"""Usage as it stood at an invoice's cutoff (SPEC §6): events are late when they arrive
after the period's end + grace, whenever the finalizer runs. Only finalization reads raw
events here, and only when some arrived after the cutoff; drafts never do."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.invoices import InvoiceStatus
from billing.metering import GroupValues, MetricDefinition, RollupPartial
from models.invoices import InvoiceRow
from models.store import dialect
from models.store.rollup_reads import window_partials
from models.store.rollups import WindowPartials, contributions_of, event_from_row
from models.tables import table
from models.usage import UsageEventRow

events = table(UsageEventRow)
invoices = table(InvoiceRow)


def _window(org_id: str, customer_id: str, start: datetime, end: datetime) -> Any:
    return (
        (events.c.org_id == org_id)
        & (events.c.customer_id == customer_id)
        & (events.c.timestamp >= start)
        & (events.c.timestamp < end)
    )


async def count_late(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    start: datetime,
    end: datetime,
    cutoff: datetime,
) -> int:
    """Events of the customer timestamped in ``[start, end)`` that arrived after ``cutoff``."""
    query = select(func.count()).where(
        _window(org_id, customer_id, start, end) & (events.c.received_at > cutoff)
    )
    return int((await conn.execute(query)).scalar_one())


async def partials_at_cutoff(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    start: datetime,
    end: datetime,
    metrics: Sequence[MetricDefinition],
    cutoff: datetime,
    late: int,
) -> WindowPartials:
    """The window's partials counting only events that arrived by ``cutoff``: from the
    rollups when none arrived later (``late`` == 0), else from the raw events."""
    if not late:
        return await window_partials(conn, org_id, customer_id, metrics, start, end)
    query = select(events).where(
        _window(org_id, customer_id, start, end) & (events.c.received_at <= cutoff)
    )
    merged: dict[tuple[str, GroupValues], RollupPartial] = {}
    for row in await conn.execute(query):
        for c in contributions_of(customer_id, event_from_row(row), metrics):
            key = (c.metric_id, c.group_values)
            previous = merged.get(key)
            merged[key] = c.partial if previous is None else previous.merge(c.partial)
    result: WindowPartials = {m.id: [] for m in metrics}
    for (metric_id, group), partial in sorted(merged.items(), key=lambda item: item[0]):
        result[metric_id].append((group, partial))
    return result


async def lock_late_counts(
    conn: AsyncConnection, customer_ids: Sequence[str], *, exclusive: bool
) -> None:
    """Serialize counting late events with finalization, per customer, until commit
    (PostgreSQL advisory locks; SQLite has one writer): ingest takes them shared, the
    finalizer exclusive, so an event is counted either in the invoice's figure at
    finalization or by the ingest that stores it, never by neither."""
    if dialect.is_sqlite(conn) or not customer_ids:
        return
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await conn.execute(
        text(f"SELECT {lock}(hashtext(c)) FROM unnest(CAST(:ids AS text[])) AS c"),
        {"ids": sorted(set(customer_ids))},
    )


async def count_late_arrivals(
    conn: AsyncConnection, org_id: str, arrivals: Sequence[tuple[str, datetime]]
) -> None:
    """Add just-accepted events ``(customer id, timestamp)`` to the ``late_events`` of the
    live invoices whose period holds them (one read when none does, the usual case)."""
    if not arrivals:
        return
    customer_ids = sorted({customer_id for customer_id, _ in arrivals})
    await lock_late_counts(conn, customer_ids, exclusive=False)
    query = select(
        invoices.c.id, invoices.c.customer_id, invoices.c.starting_at, invoices.c.ending_before
    ).where(
        (invoices.c.org_id == org_id)
        & invoices.c.customer_id.in_(customer_ids)
        & (invoices.c.ending_before > min(timestamp for _, timestamp in arrivals))
        & (invoices.c.status != InvoiceStatus.VOID.value)
    )
    counts: dict[str, int] = {}
    for row in await conn.execute(query):
        found = sum(
            1
            for customer_id, timestamp in arrivals
            if customer_id == row.customer_id and row.starting_at <= timestamp < row.ending_before
        )
        if found:
            counts[row.id] = found
    for invoice_id, found in counts.items():
        await conn.execute(
            update(invoices)
            .where(invoices.c.id == invoice_id)
            .values(late_events=invoices.c.late_events + found)
        )
