"""An organization's Stripe settings, and the Stripe events it has handled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from models.billing_providers import StripeEventRow, StripeSettingsRow
from models.store.dialect import insert
from models.tables import table

settings = table(StripeSettingsRow)
events = table(StripeEventRow)


@dataclass(frozen=True)
class StripeSettings:
    secret_key: str
    webhook_secret: str | None
    api_base: str | None
    send_zero_total: bool
    updated_at: datetime


async def stripe_settings_of(conn: AsyncConnection, org_id: str) -> StripeSettings | None:
    row = (await conn.execute(select(settings).where(settings.c.org_id == org_id))).first()
    if row is None:
        return None
    return StripeSettings(
        row.secret_key, row.webhook_secret, row.api_base, row.send_zero_total, row.updated_at
    )


async def save_stripe_settings(conn: AsyncConnection, org_id: str, value: StripeSettings) -> None:
    """Store the organization's Stripe settings (replacing them)."""
    values = {
        "secret_key": value.secret_key,
        "webhook_secret": value.webhook_secret,
        "api_base": value.api_base,
        "send_zero_total": value.send_zero_total,
        "updated_at": value.updated_at,
    }
    statement = insert(conn, settings).values(org_id=org_id, **values)
    await conn.execute(statement.on_conflict_do_update(index_elements=["org_id"], set_=values))


async def webhook_secrets(conn: AsyncConnection) -> list[tuple[str, str]]:
    """Every (organization, Stripe webhook signing secret) configured."""
    query = select(settings.c.org_id, settings.c.webhook_secret).where(
        settings.c.webhook_secret.is_not(None)
    )
    return [(row.org_id, row.webhook_secret) for row in await conn.execute(query)]


async def first_sight(
    conn: AsyncConnection, org_id: str, event_id: str, type: str, now: datetime
) -> bool:
    """Record a Stripe event as handled; False when it already was (a redelivery)."""
    statement = (
        insert(conn, events)
        .values(org_id=org_id, event_id=event_id, type=type, received_at=now)
        .on_conflict_do_nothing(index_elements=["org_id", "event_id"])
    )
    return bool((await conn.execute(statement)).rowcount)


async def prune_stripe_events(conn: AsyncConnection, before: datetime) -> int:
    """Forget the Stripe events received before ``before``; returns how many."""
    result = await conn.execute(delete(events).where(events.c.received_at < before))
    return int(result.rowcount)
