"""Delivering the outbox: leasing a due delivery, logging each attempt, scheduling the
next, finding what Redis lost, and replays. The database is the truth: a delivery is
pending until an attempt succeeds or the retries run out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
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
    """A delivery this worker may attempt now, with its message and endpoint; ``due`` is
    the time it was due (its job's slot)."""

    delivery_id: str
    org_id: str
    message_id: str
    body: str
    attempts: int
    endpoint: Endpoint
    leased_until: datetime
    due: datetime


ERROR_CHARS = 500  # the attempts' error column


@dataclass(frozen=True)
class AttemptLog:
    status_code: int | None
    duration_ms: int
    response_body: str
    error: str | None


@dataclass(frozen=True)
class Settled:
    """The attempt made of a leased delivery (at ``at``) and what follows: succeeded,
    pending again at ``retry_at``, or failed (no retry left)."""

    leased: Leased
    log: AttemptLog
    at: datetime
    succeeded: bool
    retry_at: datetime | None


DUE_TOLERANCE = timedelta(seconds=1)
"""A job may run this much before its delivery's time (ARQ's schedule is in milliseconds
of another clock) and still take it."""


def _claimable(now: datetime) -> Any:
    return (
        (deliveries.c.status == PENDING)
        & (deliveries.c.next_attempt_at <= now + DUE_TOLERANCE)
        & or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until <= now)
    )


async def lease_deliveries(
    conn: AsyncConnection, delivery_id: str, now: datetime, lease: timedelta, more: int
) -> list[Leased]:
    """Take for ``lease`` the delivery ``delivery_id`` (first, if it is due, unleased and
    pending) and up to ``more`` other such deliveries, the longest due first. Rows another
    transaction is leasing are skipped, never waited for (PostgreSQL ``SKIP LOCKED``), so
    two workers never take the same delivery and never deadlock."""
    claimable = select(deliveries.c.id).where(_claimable(now)).with_for_update(skip_locked=True)
    ids = list((await conn.execute(claimable.where(deliveries.c.id == delivery_id))).scalars())
    if more > 0:
        others = (
            claimable.where(deliveries.c.id != delivery_id)
            .order_by(deliveries.c.next_attempt_at)
            .limit(more)
        )
        ids += (await conn.execute(others)).scalars()
    if not ids:
        return []
    until = now + lease
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids) & _claimable(now))
        .values(leased_until=until)
    )
    query = (
        select(deliveries, messages.c.body)
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id.in_(ids) & (deliveries.c.leased_until == until))
    )
    rows = {row.id: row for row in await conn.execute(query)}
    wanted = {row.endpoint_id for row in rows.values()}
    found = await conn.execute(select(endpoints).where(endpoints.c.id.in_(wanted)))
    by_id = {row.id: endpoint_of(row) for row in found}
    return [
        Leased(
            delivery_id=row.id,
            org_id=row.org_id,
            message_id=row.message_id,
            body=row.body,
            attempts=row.attempts,
            endpoint=by_id[row.endpoint_id],
            leased_until=until,
            due=row.next_attempt_at,
        )
        for row in (rows[i] for i in ids if i in rows)
    ]


async def record_attempts(conn: AsyncConnection, settled: Sequence[Settled]) -> None:
    """Log the attempts and settle their deliveries (two statements for any number);
    a delivery whose lease was lost meanwhile (a replay, or another worker took over after
    the lease ran out) is left alone, its attempt only logged."""
    if not settled:
        return
    await conn.execute(
        attempts.insert(),
        [
            {
                "id": new_id("what"),
                "org_id": s.leased.org_id,
                "delivery_id": s.leased.delivery_id,
                "attempted_at": s.at,
                "status_code": s.log.status_code,
                "duration_ms": s.log.duration_ms,
                "response_body": s.log.response_body,
                "error": None if s.log.error is None else s.log.error[:ERROR_CHARS],
            }
            for s in settled
        ],
    )
    await conn.execute(
        update(deliveries)
        .where(
            (deliveries.c.id == bindparam("b_id"))
            & (deliveries.c.leased_until == bindparam("b_until"))
        )
        .values(
            status=bindparam("b_status"),
            attempts=deliveries.c.attempts + 1,
            next_attempt_at=bindparam("b_next"),
            leased_until=None,
            updated_at=bindparam("b_at"),
        ),
        [
            {
                "b_id": s.leased.delivery_id,
                "b_until": s.leased.leased_until,
                "b_status": SUCCEEDED if s.succeeded else PENDING if s.retry_at else FAILED,
                "b_next": s.retry_at,
                "b_at": s.at,
            }
            for s in settled
        ],
    )


async def release_leases(conn: AsyncConnection, leased: Sequence[Leased]) -> None:
    """Give back deliveries leased but not attempted: due again at once, attempts
    unchanged (a lease lost meanwhile is left alone)."""
    if leased:
        await conn.execute(
            update(deliveries)
            .where(
                (deliveries.c.id == bindparam("b_id"))
                & (deliveries.c.leased_until == bindparam("b_until"))
            )
            .values(leased_until=None),
            [{"b_id": x.delivery_id, "b_until": x.leased_until} for x in leased],
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
