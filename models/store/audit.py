"""Writing and reading the audit log (in the same unit of work as the change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from models.audit import AuditEntry
from models.ids import new_id
from models.store.pages import page
from models.tables import table

audit_log = table(AuditEntry)


async def record_audit(
    conn: AsyncConnection,
    org_id: str,
    *,
    actor: str,
    action: str,
    object_kind: str,
    object_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> None:
    await conn.execute(
        audit_log.insert().values(
            id=new_id("aud"),
            org_id=org_id,
            actor=actor,
            action=action,
            object_kind=object_kind,
            object_id=object_id,
            changes=changes,
            created_at=now,
        )
    )


async def audit_page(
    conn: AsyncConnection,
    org_id: str,
    first: int,
    after: str | None,
    object_id: str | None = None,
) -> tuple[list[tuple[str, AuditEntry]], bool]:
    """The organization's audit log (of one object when ``object_id`` is given), newest
    first."""
    query = select(audit_log).where(audit_log.c.org_id == org_id)
    if object_id is not None:
        query = query.where(audit_log.c.object_id == object_id)
    found = await page(
        conn, query, audit_log.c.created_at, audit_log.c.id, first, after, newest_first=True
    )
    return [
        (cursor, AuditEntry.model_validate(row._mapping)) for cursor, row in found.rows
    ], found.has_next
