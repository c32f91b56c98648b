"""Writing and reading the audit log (in the same unit of work as the change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from models.audit import AuditEntry
from models.ids import new_id
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


async def audit_entries(conn: AsyncConnection, org_id: str, limit: int = 100) -> list[AuditEntry]:
    query = (
        select(audit_log)
        .where(audit_log.c.org_id == org_id)
        .order_by(audit_log.c.created_at.desc(), audit_log.c.id.desc())
        .limit(limit)
    )
    return [AuditEntry.model_validate(row._mapping) for row in await conn.execute(query)]
