"""The outbox (SPEC §10): messages written in the transaction of their cause, with one
pending delivery per subscribed endpoint; and the log read back (messages, deliveries,
attempts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from models.ids import new_id
from models.store.pages import page
from models.tables import table
from models.webhooks import WebhookAttemptRow, WebhookDeliveryRow, WebhookMessageRow

messages = table(WebhookMessageRow)
deliveries = table(WebhookDeliveryRow)
attempts = table(WebhookAttemptRow)

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass(frozen=True)
class Message:
    id: str
    type: str
    customer_id: str | None
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: str
    message_id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class Attempt:
    id: str
    delivery_id: str
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    response_body: str
    error: str | None


Due = tuple[str, datetime]
"""(delivery id, when it is due): what a ``deliver_webhook`` job is enqueued for."""


def _message(row: Any) -> Message:
    return Message(row.id, row.type, row.customer_id, row.body, row.created_at)


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        row.id,
        row.message_id,
        row.endpoint_id,
        row.status,
        row.attempts,
        row.next_attempt_at,
        row.updated_at,
    )


async def insert_message(
    conn: AsyncConnection,
    org_id: str,
    *,
    message_id: str,
    type: str,
    customer_id: str | None,
    body: str,
    now: datetime,
    endpoint_ids: Sequence[str],
) -> list[Due]:
    """Store a message and a pending delivery, due now, to each of ``endpoint_ids``."""
    await conn.execute(
        messages.insert().values(
            id=message_id,
            org_id=org_id,
            type=type,
            customer_id=customer_id,
            body=body,
            created_at=now,
        )
    )
    due = [(new_id("whdl"), now) for _ in endpoint_ids]
    if due:
        await conn.execute(
            deliveries.insert(),
            [
                {
                    "id": delivery_id,
                    "org_id": org_id,
                    "message_id": message_id,
                    "endpoint_id": endpoint_id,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
                for (delivery_id, _), endpoint_id in zip(due, endpoint_ids, strict=True)
            ],
        )
    return due


async def messages_page(
    conn: AsyncConnection,
    org_id: str,
    first: int,
    after: str | None,
    *,
    type: str | None = None,
    customer_id: str | None = None,
    since: datetime | None = None,
) -> tuple[list[tuple[str, Message]], bool]:
    """The organization's messages, oldest first, optionally of one type or customer, or
    created at or after ``since``."""
    query = select(messages).where(messages.c.org_id == org_id)
    if type is not None:
        query = query.where(messages.c.type == type)
    if customer_id is not None:
        query = query.where(messages.c.customer_id == customer_id)
    if since is not None:
        query = query.where(messages.c.created_at >= since)
    found = await page(conn, query, messages.c.created_at, messages.c.id, first, after)
    return [(cursor, _message(row)) for cursor, row in found.rows], found.has_next


async def message_by_id(conn: AsyncConnection, org_id: str, message_id: str) -> Message | None:
    query = select(messages).where((messages.c.org_id == org_id) & (messages.c.id == message_id))
    row = (await conn.execute(query)).first()
    return None if row is None else _message(row)


async def deliveries_of(
    conn: AsyncConnection, org_id: str, message_ids: Sequence[str]
) -> dict[str, list[Delivery]]:
    """Per message id, its deliveries (one query for any number of messages)."""
    found: dict[str, list[Delivery]] = {m: [] for m in message_ids}
    if not message_ids:
        return found
    query = (
        select(deliveries)
        .where((deliveries.c.org_id == org_id) & deliveries.c.message_id.in_(sorted(found)))
        .order_by(deliveries.c.id)
    )
    for row in await conn.execute(query):
        found[row.message_id].append(delivery_of(row))
    return found


async def attempts_of(
    conn: AsyncConnection, org_id: str, delivery_ids: Sequence[str]
) -> dict[str, list[Attempt]]:
    """Per delivery id, its attempts, oldest first (one query)."""
    found: dict[str, list[Attempt]] = {d: [] for d in delivery_ids}
    if not delivery_ids:
        return found
    query = (
        select(attempts)
        .where((attempts.c.org_id == org_id) & attempts.c.delivery_id.in_(sorted(found)))
        .order_by(attempts.c.attempted_at, attempts.c.id)
    )
    for row in await conn.execute(query):
        found[row.delivery_id].append(
            Attempt(
                row.id,
                row.delivery_id,
                row.attempted_at,
                row.status_code,
                row.duration_ms,
                row.response_body,
                row.error,
            )
        )
    return found


async def fail_pending(
    conn: AsyncConnection, endpoint_id: str, now: datetime, lease: datetime | None = None
) -> None:
    """Stop the pending deliveries to a disabled endpoint (replay resumes them): those no
    worker holds, and those holding ``lease`` (the caller's own). An attempt under way
    elsewhere is left to its worker, which records it (its lease intact, so the attempt
    is counted) and settles it: a retry is failed here when it is next leased."""
    free = or_(deliveries.c.leased_until.is_(None), deliveries.c.leased_until <= now)
    if lease is not None:
        free = free | (deliveries.c.leased_until == lease)
    await conn.execute(
        update(deliveries)
        .where((deliveries.c.endpoint_id == endpoint_id) & (deliveries.c.status == PENDING) & free)
        .values(status=FAILED, next_attempt_at=None, leased_until=None, updated_at=now)
    )
