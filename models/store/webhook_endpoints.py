"""Webhook endpoints of an organization (SPEC §10): CRUD, secret rotation, health."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import NotFoundError
from models.ids import new_id
from models.store.pages import page
from models.store.uniqueness import claim_uniqueness_key
from models.store.webhook_messages import fail_pending
from models.tables import table
from models.webhooks import WebhookEndpointRow

endpoints = table(WebhookEndpointRow)


@dataclass(frozen=True)
class Endpoint:
    id: str
    org_id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime

    def wants(self, event_type: str) -> bool:
        """Subscribed to ``event_type`` (no filter: every type)."""
        return not self.event_types or event_type in self.event_types

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, then the previous one while its overlap lasts."""
        until = self.previous_secret_until
        if self.previous_secret and until is not None and now < until:
            return [self.secret, self.previous_secret]
        return [self.secret]


def endpoint_of(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        org_id=row.org_id,
        url=row.url,
        description=row.description,
        event_types=tuple(row.event_types),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_until=row.previous_secret_until,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _live(org_id: str) -> Any:
    return (endpoints.c.org_id == org_id) & endpoints.c.deleted_at.is_(None)


async def create_endpoint(
    conn: AsyncConnection,
    org_id: str,
    *,
    url: str,
    event_types: Sequence[str],
    description: str,
    secret: str,
    now: datetime,
    uniqueness_key: str | None = None,
) -> Endpoint:
    endpoint_id = new_id("whep")
    await claim_uniqueness_key(conn, org_id, "webhook_endpoint", uniqueness_key, endpoint_id)
    await conn.execute(
        endpoints.insert().values(
            id=endpoint_id,
            org_id=org_id,
            url=url,
            description=description,
            event_types=sorted(set(event_types)),
            enabled=True,
            secret=secret,
            created_at=now,
            updated_at=now,
        )
    )
    return await endpoint_by_id(conn, org_id, endpoint_id)


async def find_endpoint(conn: AsyncConnection, org_id: str, endpoint_id: str) -> Endpoint | None:
    query = select(endpoints).where(_live(org_id) & (endpoints.c.id == endpoint_id))
    row = (await conn.execute(query)).first()
    return None if row is None else endpoint_of(row)


async def endpoint_by_id(conn: AsyncConnection, org_id: str, endpoint_id: str) -> Endpoint:
    """A live endpoint of ``org_id``; NOT_FOUND otherwise."""
    found = await find_endpoint(conn, org_id, endpoint_id)
    if found is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}", "id")
    return found


async def endpoints_page(
    conn: AsyncConnection, org_id: str, first: int, after: str | None
) -> tuple[list[tuple[str, Endpoint]], bool]:
    query = select(endpoints).where(_live(org_id))
    found = await page(conn, query, endpoints.c.created_at, endpoints.c.id, first, after)
    return [(cursor, endpoint_of(row)) for cursor, row in found.rows], found.has_next


async def update_endpoint(
    conn: AsyncConnection, org_id: str, endpoint_id: str, now: datetime, **changes: Any
) -> Endpoint:
    """Change ``url``, ``description``, ``event_types`` or ``enabled`` (None: unchanged).
    Enabling clears the disabled reason and the failure run."""
    values = {k: v for k, v in changes.items() if v is not None}
    if "event_types" in values:
        values["event_types"] = sorted(set(values["event_types"]))
    if values.get("enabled") is True:
        values.update(disabled_reason=None, failing_since=None)
    if values.get("enabled") is False:
        values["disabled_reason"] = "disabled by a user"
    await endpoint_by_id(conn, org_id, endpoint_id)
    await conn.execute(
        update(endpoints)
        .where(_live(org_id) & (endpoints.c.id == endpoint_id))
        .values(updated_at=now, **values)
    )
    if values.get("enabled") is False:
        await fail_pending(conn, endpoint_id, now)
    return await endpoint_by_id(conn, org_id, endpoint_id)


async def delete_endpoint(
    conn: AsyncConnection, org_id: str, endpoint_id: str, now: datetime
) -> None:
    """Remove an endpoint: nothing more is delivered to it (its log stays)."""
    await endpoint_by_id(conn, org_id, endpoint_id)
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id)
        .values(deleted_at=now, enabled=False, updated_at=now)
    )
    await fail_pending(conn, endpoint_id, now)


async def rotate_secret(
    conn: AsyncConnection,
    org_id: str,
    endpoint_id: str,
    secret: str,
    now: datetime,
    overlap: timedelta,
) -> Endpoint:
    """Sign with ``secret`` from now on; the replaced secret keeps signing alongside it for
    ``overlap``."""
    old = await endpoint_by_id(conn, org_id, endpoint_id)
    await conn.execute(
        update(endpoints)
        .where(endpoints.c.id == endpoint_id)
        .values(
            secret=secret,
            previous_secret=old.secret,
            previous_secret_until=now + overlap,
            updated_at=now,
        )
    )
    return await endpoint_by_id(conn, org_id, endpoint_id)


async def subscribed_endpoints(
    conn: AsyncConnection, org_id: str, event_type: str
) -> list[Endpoint]:
    """The enabled endpoints of ``org_id`` that want ``event_type``."""
    query = select(endpoints).where(_live(org_id) & endpoints.c.enabled.is_(True))
    found = [endpoint_of(row) for row in await conn.execute(query)]
    return [e for e in found if e.wants(event_type)]


async def record_health(
    conn: AsyncConnection, endpoint_id: str, succeeded: bool, now: datetime
) -> datetime | None:
    """Note an attempt's outcome; returns the start of the endpoint's unbroken run of
    failures (None after a success)."""
    if succeeded:
        await conn.execute(
            update(endpoints)
            .where((endpoints.c.id == endpoint_id) & endpoints.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return None
    await conn.execute(
        update(endpoints)
        .where((endpoints.c.id == endpoint_id) & endpoints.c.failing_since.is_(None))
        .values(failing_since=now)
    )
    query = select(endpoints.c.failing_since).where(endpoints.c.id == endpoint_id)
    since: datetime | None = (await conn.execute(query)).scalar_one()
    return since


async def disable_endpoint(
    conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime
) -> bool:
    """Disable an enabled endpoint and fail its pending deliveries (replay resumes them);
    False if it was already disabled (so ``webhook_endpoint.disabled`` is written once)."""
    result = await conn.execute(
        update(endpoints)
        .where((endpoints.c.id == endpoint_id) & endpoints.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )
    if result.rowcount:
        await fail_pending(conn, endpoint_id, now)
    return bool(result.rowcount)
