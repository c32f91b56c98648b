"""Requests to evaluate a customer's alerts, kept in the database with the change that
causes them (SPEC §7: no missed crossing, even when Redis loses the job)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from models.alerts import AlertEvaluationRow
from models.store import dialect
from models.store.alerts import watched_customers
from models.tables import table

requests = table(AlertEvaluationRow)


async def request_evaluations(
    conn: AsyncConnection, org_id: str, customer_ids: Iterable[str], now: datetime
) -> list[str]:
    """Ask, in the caller's transaction, for an evaluation of each customer a live alert
    watches (its own or an organization-wide one); returns those customers (the caller
    enqueues their jobs after commit). Customers nothing watches cost one read."""
    watched = await watched_customers(conn, org_id, list(customer_ids))
    if watched:
        insert = dialect.insert(conn, requests)
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=["org_id", "customer_id"],
                set_={
                    "requests": requests.c.requests + 1,
                    "requested_at": insert.excluded.requested_at,
                },
            ),
            [
                {
                    "org_id": org_id,
                    "customer_id": customer_id,
                    "requests": 1,
                    "evaluated": 0,
                    "requested_at": now,
                }
                for customer_id in watched
            ],
        )
    return watched


async def requests_seen(conn: AsyncConnection, org_id: str, customer_id: str) -> int:
    """How many requests the evaluation starting now answers (read after the customer's
    lock is held)."""
    query = select(requests.c.requests).where(
        (requests.c.org_id == org_id) & (requests.c.customer_id == customer_id)
    )
    return int((await conn.execute(query)).scalar_one_or_none() or 0)


async def mark_evaluated(conn: AsyncConnection, org_id: str, customer_id: str, seen: int) -> None:
    """The evaluation answered the first ``seen`` requests (later ones stay pending)."""
    await conn.execute(
        update(requests)
        .where(
            (requests.c.org_id == org_id)
            & (requests.c.customer_id == customer_id)
            & (requests.c.evaluated < seen)
        )
        .values(evaluated=seen)
    )


async def pending_evaluations(
    conn: AsyncConnection, requested_before: datetime, limit: int
) -> list[tuple[str, str]]:
    """(organization id, customer id) of requests older than ``requested_before`` that no
    evaluation has answered yet: what the sweeper enqueues again."""
    query = (
        select(requests.c.org_id, requests.c.customer_id)
        .where(
            (requests.c.evaluated < requests.c.requests)
            & (requests.c.requested_at < requested_before)
        )
        .order_by(requests.c.requested_at)
        .limit(limit)
    )
    return [(org_id, customer_id) for org_id, customer_id in await conn.execute(query)]
