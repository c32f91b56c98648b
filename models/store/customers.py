"""Customers and ingest-key resolution (a customer's id or any of its aliases)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import ConflictError, NotFoundError
from billing.validation import validate_customer
from models.customers import Customer, CustomerIngestKey
from models.ids import new_id
from models.store import dialect
from models.store import rollups as rollup_store
from models.store.metrics import list_metrics
from models.store.pages import Page, page
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table
from models.usage import UsageEventRow

customers = table(Customer)
ingest_keys = table(CustomerIngestKey)
events = table(UsageEventRow)


async def check_customer(
    conn: AsyncConnection, org_id: str, customer_id: str, field: str = "customer_id"
) -> None:
    """NOT_FOUND (naming ``field``) unless ``customer_id`` is a live customer of ``org_id``."""
    found = await conn.scalar(
        select(customers.c.id).where(
            (customers.c.id == customer_id)
            & (customers.c.org_id == org_id)
            & customers.c.archived_at.is_(None)
        )
    )
    if found is None:
        raise NotFoundError(f"no customer {customer_id!r}", field)


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
    ingest_aliases: Sequence[str] = (),
    custom_fields: dict[str, Any] | None = None,
    stripe_customer_id: str | None = None,
    stripe_collection_method: str | None = None,
    uniqueness_key: str | None = None,
) -> str:
    """Create a customer; its aliases claim stored events that named them. Returns its id."""
    validate_customer(name, ingest_aliases, stripe_collection_method)
    customer_id = new_id("cus")
    await claim_uniqueness_key(conn, org_id, "customer", uniqueness_key, customer_id)
    await conn.execute(
        customers.insert().values(
            id=customer_id,
            org_id=org_id,
            name=name.strip(),
            custom_fields=custom_fields or {},
            stripe_customer_id=stripe_customer_id,
            stripe_collection_method=(stripe_collection_method or "charge_automatically")
            if stripe_customer_id
            else None,
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
    held = select(ingest_keys.c.key).where(
        (ingest_keys.c.org_id == org_id) & (ingest_keys.c.customer_id == customer_id)
    )
    wanted = sorted(set(aliases) - set((await conn.execute(held)).scalars()))
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
            f"one of {wanted} already names another customer", "ingest_aliases"
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


@dataclass(frozen=True)
class CustomerRecord:
    id: str
    name: str
    ingest_aliases: tuple[str, ...]
    custom_fields: dict[str, Any]
    stripe_customer_id: str | None
    stripe_collection_method: str | None
    created_at: datetime
    archived_at: datetime | None


async def _records(conn: AsyncConnection, rows: list[Any]) -> list[CustomerRecord]:
    ids = [row.id for row in rows]
    aliases: dict[str, list[str]] = {}
    if ids:
        query = (
            select(ingest_keys.c.customer_id, ingest_keys.c.key)
            .where(ingest_keys.c.customer_id.in_(ids) & ingest_keys.c.is_alias)
            .order_by(ingest_keys.c.key)
        )
        for customer_id, key in await conn.execute(query):
            aliases.setdefault(customer_id, []).append(key)
    return [
        CustomerRecord(
            id=row.id,
            name=row.name,
            ingest_aliases=tuple(aliases.get(row.id, ())),
            custom_fields=dict(row.custom_fields or {}),
            stripe_customer_id=row.stripe_customer_id,
            stripe_collection_method=row.stripe_collection_method,
            created_at=row.created_at,
            archived_at=row.archived_at,
        )
        for row in rows
    ]


async def customers_by_id(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str]
) -> dict[str, CustomerRecord]:
    """The organization's customers among ``customer_ids`` (others are absent)."""
    if not customer_ids:
        return {}
    query = select(customers).where(
        (customers.c.org_id == org_id) & customers.c.id.in_(sorted(set(customer_ids)))
    )
    return {r.id: r for r in await _records(conn, list(await conn.execute(query)))}


async def customers_page(
    conn: AsyncConnection, org_id: str, first: int, after: str | None
) -> tuple[list[tuple[str, CustomerRecord]], bool]:
    """One page of the organization's customers, oldest first."""
    found: Page = await page(
        conn,
        select(customers).where(customers.c.org_id == org_id),
        customers.c.created_at,
        customers.c.id,
        first,
        after,
    )
    records = await _records(conn, [row for _, row in found.rows])
    return [(cursor, r) for (cursor, _), r in zip(found.rows, records, strict=True)], found.has_next


async def update_customer(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    *,
    name: str | None = None,
    add_ingest_aliases: Sequence[str] = (),
    custom_fields: dict[str, Any] | None = None,
    stripe: tuple[str | None, str | None] | None = None,
) -> None:
    """Change a customer's fields; ``stripe`` = (customer id, collection method) links it to
    Stripe, (None, None) unlinks it. NOT_FOUND if it is not the organization's."""
    validate_customer(name, add_ingest_aliases, stripe[1] if stripe else None)
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name.strip()
    if custom_fields is not None:
        values["custom_fields"] = custom_fields
    if stripe is not None:
        values["stripe_customer_id"] = stripe[0]
        values["stripe_collection_method"] = stripe[1] if stripe[0] else None
    await check_customer(conn, org_id, customer_id, "id")
    mine = (customers.c.id == customer_id) & (customers.c.org_id == org_id)
    if values:
        await conn.execute(update(customers).where(mine).values(**values))
    await add_aliases(conn, org_id, customer_id, add_ingest_aliases)


async def live_customer_ids(conn: AsyncConnection, org_id: str) -> list[str]:
    """Every live customer of the organization (what an organization-wide alert watches)."""
    query = select(customers.c.id).where(
        (customers.c.org_id == org_id) & customers.c.archived_at.is_(None)
    )
    return [customer_id for (customer_id,) in await conn.execute(query)]
