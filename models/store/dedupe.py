"""Pruning the dedupe keys (SPEC §1: a transaction id is a duplicate when seen in the
last 34 days)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from models.tables import table
from models.usage import EventDedupe

dedupe = table(EventDedupe)


async def prune_dedupe(conn: AsyncConnection, before: datetime) -> int:
    """Forget the dedupe keys first seen before ``before``; returns how many."""
    result = await conn.execute(delete(dedupe).where(dedupe.c.received_at < before))
    return int(result.rowcount)
