"""Customers and ingest-key resolution (a customer's id or any of its aliases)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import ConflictError
from models.customers import Customer, CustomerIngestKey
from models.ids import new_id
from models.store import dialect
from models.store import rollups as rollup_store
from models.store.metrics import list_metrics
from models.tables import table
from models.usage import UsageEventRow

customers = table(Customer)
ingest_keys = table(CustomerIngestKey)
events = table(UsageEventRow)


async def resolve_customers(
    conn: AsyncConnection, org_id: str, refs: Iterable[str]
) -> dict[str, str]:
    """Map each ref an event used (customer id or alias) to a live customer id."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    query = select(ingest_keys.c.key, ingest_keys.c.customer_id).where(
        (ingest_keys.c.org_id == org_id) & ingest_keys.c.key.in_(wanted)
    )
    return {key: customer_id for key, customer_id in await conn.execute(query)}


async def create_customer(
    conn: AsyncConnection,
    org_id: str,
    name: str,
    now: datetime,
    *,
    ingest_aliases: Iterable[str] = (),
    custom_fields: dict[str, Any] | None = None,
) -> str:
    """Create a customer; its aliases claim stored events that named them. Returns its id."""
    customer_id = new_id("cus")
    await conn.execute(
        customers.insert().values(
            id=customer_id,
            org_id=org_id,
            name=name,
            custom_fields=custom_fields or {},
            created_at=now,
        )
    )
    await conn.execute(
        ingest_keys.insert().values(
            org_id=org_id, key=customer_id, customer_id=customer_id, is_alias=False
        )
    )
    await add_aliases(conn, org_id, customer_id, ingest_aliases)
    return customer_id


async def add_aliases(
    conn: AsyncConnection, org_id: str, customer_id: str, aliases: Iterable[str]
) -> None:
    """Attach aliases (CONFLICT if another live customer holds one) and claim their events.

    Stored events whose customer was unknown and that named one of these aliases are
    assigned to the customer and rolled up in the same transaction.
    """
    wanted = sorted(set(aliases))
    if not wanted:
        return
    rows = [
        {"org_id": org_id, "key": a, "customer_id": customer_id, "is_alias": True} for a in wanted
    ]
    try:
        async with conn.begin_nested():
            await conn.execute(ingest_keys.insert(), rows)
    except IntegrityError as error:
        raise ConflictError(
            f"ingest_aliases: one of {wanted} already names another customer"
        ) from error
    await dialect.lock_organization(conn, org_id, exclusive=True)
    orphan = (events.c.org_id == org_id) & events.c.customer_id.is_(None)
    orphan &= events.c.customer_ref.in_(wanted)
    claimed = list(await conn.execute(select(events).where(orphan)))
    if not claimed:
        return
    await conn.execute(update(events).where(orphan).values(customer_id=customer_id))
    known = await list_metrics(conn, org_id)
    await rollup_store.apply_contributions(
        conn,
        org_id,
        (
            contribution
            for row in claimed
            for contribution in rollup_store.contributions_of(
                customer_id,
                rollup_store.event_from_row(row),
                # a metric still waiting for its back-fill will count this event itself
                [m.definition for m in known if m.backfilled or m.rated_by_ingest(row.id)],
            )
        ),
    )
