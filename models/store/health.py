"""Operational health across every organization: what is owed and not yet done (webhook
deliveries due, Stripe pushes pending) and which endpoints fail. Read by the metrics
scrape and ``meterline status``; cheap (indexed counts, a handful of endpoint rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from models.store.invoice_syncs import syncs
from models.store.webhook_endpoints import endpoints
from models.store.webhook_messages import PENDING, deliveries

RECENTLY_DISABLED_LIMIT = 100


@dataclass(frozen=True)
class Backlog:
    """``outbox_due``: pending webhook deliveries due by now (being sent included);
    ``stripe_pending``: invoice pushes to Stripe owed (``next_attempt_at`` set);
    ``endpoints_failing``: enabled endpoints in an unbroken run of failed attempts."""

    outbox_due: int
    stripe_pending: int
    endpoints_failing: int


@dataclass(frozen=True)
class FailingEndpoint:
    org_id: str
    endpoint_id: str
    url: str
    failing_since: datetime


@dataclass(frozen=True)
class DisabledEndpoint:
    """``disabled_at`` is the endpoint's last update, which disabling it was."""

    org_id: str
    endpoint_id: str
    url: str
    reason: str | None
    disabled_at: datetime


def _failing() -> ColumnElement[bool]:
    return (
        endpoints.c.enabled.is_(True)
        & endpoints.c.deleted_at.is_(None)
        & endpoints.c.failing_since.is_not(None)
    )


async def backlog(conn: AsyncConnection, now: datetime) -> Backlog:
    """The three counts, in one statement."""
    due = (
        select(func.count())
        .select_from(deliveries)
        .where((deliveries.c.status == PENDING) & (deliveries.c.next_attempt_at <= now))
    )
    pending = select(func.count()).select_from(syncs).where(syncs.c.next_attempt_at.is_not(None))
    failing = select(func.count()).select_from(endpoints).where(_failing())
    row = (
        await conn.execute(
            select(due.scalar_subquery(), pending.scalar_subquery(), failing.scalar_subquery())
        )
    ).one()
    return Backlog(int(row[0]), int(row[1]), int(row[2]))


async def failing_endpoints(conn: AsyncConnection) -> list[FailingEndpoint]:
    """Enabled endpoints failing now, longest failing first."""
    query = (
        select(endpoints.c.org_id, endpoints.c.id, endpoints.c.url, endpoints.c.failing_since)
        .where(_failing())
        .order_by(endpoints.c.failing_since, endpoints.c.id)
    )
    return [
        FailingEndpoint(row.org_id, row.id, row.url, row.failing_since)
        for row in await conn.execute(query)
    ]


async def recently_disabled_endpoints(
    conn: AsyncConnection, since: datetime
) -> list[DisabledEndpoint]:
    """Endpoints disabled (by the hub or by a user) at or after ``since``, newest first."""
    query = (
        select(
            endpoints.c.org_id,
            endpoints.c.id,
            endpoints.c.url,
            endpoints.c.disabled_reason,
            endpoints.c.updated_at,
        )
        .where(
            endpoints.c.enabled.is_(False)
            & endpoints.c.deleted_at.is_(None)
            & (endpoints.c.updated_at >= since)
        )
        .order_by(endpoints.c.updated_at.desc(), endpoints.c.id)
        .limit(RECENTLY_DISABLED_LIMIT)
    )
    return [
        DisabledEndpoint(row.org_id, row.id, row.url, row.disabled_reason, row.updated_at)
        for row in await conn.execute(query)
    ]
