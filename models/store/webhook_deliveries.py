"""Delivering the outbox: leasing a due delivery, logging each attempt, scheduling the
next, finding what Redis lost, and replays. The database is the truth: a delivery is
pending until an attempt succeeds or the retries run out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import NotFoundError
from models.ids import new_id
from models.store.webhook_endpoints import Endpoint, endpoint_by_id, endpoint_of, endpoints
from models.store.webhook_messages import (
    FAILED,
    PENDING,
    SUCCEEDED,
    Due,
    attempts,
    deliveries,
    message_by_id,
    messages,
)


@dataclass(frozen=True)
class Leased:
    """A delivery this worker may attempt now, with its message and endpoint."""

    delivery_id: str
    org_id: str
    message_id: str
    body: str
    attempts: int
    endpoint: Endpoint
    leased_until: datetime


ERROR_CHARS = 500  # the attempts' error column


@dataclass(frozen=True)
class AttemptLog:
    status_code: int | None
    duration_ms: int
    response_body: str
    error: str | None


DUE_TOLERANCE = timedelta(seconds=1)
"""A job may run this much before its delivery's time (ARQ's schedule is in milliseconds
of another clock) and still take it."""


def _claimable(now: datetime) -> Any:
    return (
        (deliveries.c.status == PENDING)
        & (deliveries.c.next_attempt_at <= now + DUE_TOLERANCE)
        & or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until <= now)
    )


async def lease_delivery(
    conn: AsyncConnection, delivery_id: str, now: datetime, lease: timedelta
) -> Leased | None:
    """Take a due, unleased, pending delivery for ``lease``; None if it is not due, leased
    by another worker, or settled (so duplicate jobs do nothing)."""
    until = now + lease
    result = await conn.execute(
        update(deliveries)
        .where((deliveries.c.id == delivery_id) & _claimable(now))
        .values(leased_until=until)
    )
    if not result.rowcount:
        return None
    query = (
        select(deliveries, messages.c.body)
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id == delivery_id)
    )
    row = (await conn.execute(query)).one()
    endpoint_row = (
        await conn.execute(select(endpoints).where(endpoints.c.id == row.endpoint_id))
    ).one()
    return Leased(
        delivery_id,
        row.org_id,
        row.message_id,
        row.body,
        row.attempts,
        endpoint_of(endpoint_row),
        until,
    )


async def record_attempt(
    conn: AsyncConnection,
    leased: Leased,
    log: AttemptLog,
    now: datetime,
    *,
    succeeded: bool,
    retry_at: datetime | None,
) -> None:
    """Log an attempt and settle the delivery: succeeded, pending again at ``retry_at``,
    or failed (no retry left); unless the lease was lost meanwhile (a replay or another
    worker took over), then the attempt is only logged."""
    await conn.execute(
        attempts.insert().values(
            id=new_id("what"),
            org_id=leased.org_id,
            delivery_id=leased.delivery_id,
            attempted_at=now,
            status_code=log.status_code,
            duration_ms=log.duration_ms,
            response_body=log.response_body,
            error=None if log.error is None else log.error[:ERROR_CHARS],
        )
    )
    status = SUCCEEDED if succeeded else PENDING if retry_at is not None else FAILED
    await conn.execute(
        update(deliveries)
        .where(
            (deliveries.c.id == leased.delivery_id)
            & (deliveries.c.leased_until == leased.leased_until)
        )
        .values(
            status=status,
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=retry_at,
            leased_until=None,
            updated_at=now,
        )
    )


async def due_deliveries(conn: AsyncConnection, now: datetime, limit: int) -> list[Due]:
    """Pending deliveries due by ``now`` and not leased: what the sweeper re-enqueues."""
    query = (
        select(deliveries.c.id, deliveries.c.next_attempt_at)
        .where(_claimable(now))
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return [(row.id, row.next_attempt_at) for row in await conn.execute(query)]


def _again(now: datetime) -> dict[str, Any]:
    """Pending and due now; a lease in force is kept, so an attempt being sent is never
    sent twice at once."""
    return {"status": PENDING, "attempts": 0, "next_attempt_at": now, "updated_at": now}


async def replay_message(
    conn: AsyncConnection, org_id: str, message_id: str, endpoint_id: str | None, now: datetime
) -> list[Due]:
    """Send a message again, now: to ``endpoint_id`` (a delivery is created if the endpoint
    did not get it), else to every endpoint it was delivered to. The ``webhook-id`` is
    the message's, as on the first delivery."""
    if await message_by_id(conn, org_id, message_id) is None:
        raise NotFoundError(f"no webhook message {message_id!r}", "message_id")
    scope = (deliveries.c.org_id == org_id) & (deliveries.c.message_id == message_id)
    if endpoint_id is not None:
        await endpoint_by_id(conn, org_id, endpoint_id)
        scope = scope & (deliveries.c.endpoint_id == endpoint_id)
        exists = (await conn.execute(select(deliveries.c.id).where(scope))).first()
        if exists is None:
            delivery_id = new_id("whdl")
            await conn.execute(
                deliveries.insert().values(
                    id=delivery_id,
                    org_id=org_id,
                    message_id=message_id,
                    endpoint_id=endpoint_id,
                    **_again(now),
                )
            )
            return [(delivery_id, now)]
    return await _replay(conn, scope, now)


async def replay_failed(
    conn: AsyncConnection, org_id: str, endpoint_id: str, since: datetime, now: datetime
) -> list[Due]:
    """Send again every failed delivery of an endpoint whose message was created at or
    after ``since``."""
    await endpoint_by_id(conn, org_id, endpoint_id)
    recent = select(messages.c.id).where(
        (messages.c.org_id == org_id) & (messages.c.created_at >= since)
    )
    scope = (
        (deliveries.c.org_id == org_id)
        & (deliveries.c.endpoint_id == endpoint_id)
        & (deliveries.c.status == FAILED)
        & deliveries.c.message_id.in_(recent)
    )
    return await _replay(conn, scope, now)


async def _replay(conn: AsyncConnection, scope: Any, now: datetime) -> list[Due]:
    ids = [row.id for row in await conn.execute(select(deliveries.c.id).where(scope))]
    if ids:
        await conn.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(**_again(now)))
    return [(delivery_id, now) for delivery_id in ids]
