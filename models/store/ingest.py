"""Recording a batch of validated events: dedupe, store, resolve, roll up — one transaction.

The dedupe is the primary key of ``event_dedupe`` (``INSERT … ON CONFLICT DO NOTHING
RETURNING``), never a read-then-write, so it holds under concurrent and retried requests
across processes. Only the newly inserted events are stored and rolled up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import UsageEvent
from models.store import dialect
from models.store import rollups as rollup_store
from models.store.customers import resolve_customers
from models.store.late_usage import count_late_arrivals
from models.store.metrics import active_metrics
from models.tables import table
from models.usage import EventDedupe, UsageEventRow

dedupe = table(EventDedupe)
events = table(UsageEventRow)


@dataclass
class BatchOutcome:
    """What happened to each valid event of a batch, by its index in the request."""

    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    unknown_customer: list[int] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)


async def record_batch(
    conn: AsyncConnection,
    org_id: str,
    batch: Sequence[tuple[int, UsageEvent]],
    received_at: datetime,
) -> BatchOutcome:
    outcome = BatchOutcome()
    await dialect.lock_organization(conn, org_id, exclusive=False)
    first: dict[str, tuple[int, UsageEvent]] = {}
    for index, event in batch:
        if event.transaction_id in first:
            outcome.duplicates.append(index)
        else:
            first[event.transaction_id] = (index, event)
    fresh: set[str] = set()
    if first:
        rows = [
            {"org_id": org_id, "transaction_id": tx, "received_at": received_at}
            for tx in sorted(first)
        ]
        stmt = dialect.insert(conn, dedupe).on_conflict_do_nothing()
        inserted = await conn.execute(stmt.returning(dedupe.c.transaction_id), rows)
        fresh = set(inserted.scalars())
    repeats = Counter(event.transaction_id for _, event in batch) - Counter(fresh)
    if repeats:
        # lock the counted rows in key order first: concurrent batches never deadlock
        await conn.execute(
            select(dedupe.c.transaction_id)
            .where((dedupe.c.org_id == org_id) & dedupe.c.transaction_id.in_(sorted(repeats)))
            .order_by(dedupe.c.transaction_id)
            .with_for_update()
        )
    for times in sorted(set(repeats.values())):
        same = sorted(tx for tx, n in repeats.items() if n == times)
        await conn.execute(
            update(dedupe)
            .where((dedupe.c.org_id == org_id) & dedupe.c.transaction_id.in_(same))
            .values(duplicate_count=dedupe.c.duplicate_count + times)
        )
    new_events = sorted((first[tx] for tx in fresh), key=lambda item: item[0])
    outcome.duplicates.extend(index for tx, (index, _) in first.items() if tx not in fresh)
    outcome.duplicates.sort()
    if not new_events:
        return outcome
    customer_of = await resolve_customers(conn, org_id, (e.customer_id for _, e in new_events))
    metrics = await active_metrics(conn, org_id)
    await conn.execute(
        events.insert(),
        [
            {
                "org_id": org_id,
                "transaction_id": e.transaction_id,
                "customer_ref": e.customer_id,
                "customer_id": customer_of.get(e.customer_id),
                "event_type": e.event_type,
                "timestamp": e.timestamp,
                "properties": dict(e.properties),
                "received_at": received_at,
            }
            for _, e in new_events
        ],
    )
    contributions: list[rollup_store.Contribution] = []
    arrivals: list[tuple[str, datetime]] = []
    for index, event in new_events:
        outcome.accepted.append(index)
        customer_id = customer_of.get(event.customer_id)
        if customer_id is None:
            outcome.unknown_customer.append(index)
            continue
        found = rollup_store.contributions_of(customer_id, event, metrics)
        if not found:
            outcome.unmatched.append(index)
        outcome.customers.add(customer_id)
        arrivals.append((customer_id, event.timestamp))
        contributions.extend(found)
    await rollup_store.apply_contributions(conn, org_id, contributions)
    await count_late_arrivals(conn, org_id, arrivals)
    return outcome
