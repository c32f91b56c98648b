"""Offset notification rules and the record of handled lifecycle occurrences (SPEC §8)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import NotFoundError
from billing.schedules import LifecycleEvent, OffsetRule, parse_duration
from models.ids import new_id
from models.lifecycle import HandledOccurrence, OffsetRuleRow
from models.store import dialect
from models.store.bound_rows import in_chunks
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

rules = table(OffsetRuleRow)
handled = table(HandledOccurrence)


def _rule(row: Any) -> OffsetRule:
    return OffsetRule(
        row.id, row.name, LifecycleEvent(row.trigger), parse_duration(row.offset), row.created_at
    )


async def create_offset_rule(
    conn: AsyncConnection,
    org_id: str,
    *,
    name: str,
    trigger: LifecycleEvent,
    offset: str,
    now: datetime,
    uniqueness_key: str | None = None,
) -> OffsetRule:
    """Store a rule (the offset validated by the core); it never fires for instants before
    ``now``."""
    duration = parse_duration(offset)
    rule_id = new_id("ofr")
    await claim_uniqueness_key(conn, org_id, "offset_rule", uniqueness_key, rule_id)
    await conn.execute(
        rules.insert().values(
            id=rule_id,
            org_id=org_id,
            name=name,
            trigger=trigger.value,
            offset=duration.text,
            created_at=now,
        )
    )
    return OffsetRule(rule_id, name, trigger, duration, now)


async def archive_offset_rule(
    conn: AsyncConnection, org_id: str, rule_id: str, now: datetime
) -> OffsetRule:
    query = select(rules).where(
        (rules.c.org_id == org_id) & (rules.c.id == rule_id) & rules.c.archived_at.is_(None)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFoundError(f"no offset rule {rule_id!r}", "id")
    await conn.execute(update(rules).where(rules.c.id == rule_id).values(archived_at=now))
    return _rule(row)


async def offset_rules_of(
    conn: AsyncConnection, org_ids: Sequence[str] | None = None
) -> dict[str, list[OffsetRule]]:
    """Per organization id (all, or ``org_ids``), its live rules, oldest first."""
    query = select(rules).where(rules.c.archived_at.is_(None))
    if org_ids is not None:
        query = query.where(rules.c.org_id.in_(sorted(set(org_ids))))
    found: dict[str, list[OffsetRule]] = {}
    for row in await conn.execute(query.order_by(rules.c.created_at, rules.c.id)):
        found.setdefault(row.org_id, []).append(_rule(row))
    return found


async def handled_keys(conn: AsyncConnection, contract_ids: Sequence[str]) -> set[str]:
    """The occurrence keys already handled for these contracts."""
    found: set[str] = set()
    for chunk in in_chunks(contract_ids):
        query = select(handled.c.key).where(handled.c.contract_id.in_(chunk))
        found.update(key for (key,) in await conn.execute(query))
    return found


async def claim_occurrence(
    conn: AsyncConnection, org_id: str, contract_id: str, key: str, now: datetime
) -> bool:
    """Record ``key`` as handled; False if it already was (by this or another scheduler):
    the caller fires the occurrence, in the same transaction, only on True."""
    statement = (
        dialect.insert(conn, handled)
        .values(org_id=org_id, key=key, contract_id=contract_id, handled_at=now)
        .on_conflict_do_nothing()
    )
    return bool((await conn.execute(statement)).rowcount)
