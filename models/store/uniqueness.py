"""SPEC §0 uniqueness keys: at most one object per (organization, kind, key)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import ConflictError, ValidationError
from models.catalog import UniquenessKey
from models.tables import table

keys = table(UniquenessKey)


async def claim_uniqueness_key(
    conn: AsyncConnection, org_id: str, kind: str, key: str | None, object_id: str
) -> None:
    """Record ``key`` for a new object; CONFLICT (and nothing created) if it was used."""
    if key is None:
        return
    if not 1 <= len(key) <= 128:
        raise ValidationError("uniqueness_key", "must be 1 to 128 characters")
    try:
        async with conn.begin_nested():
            await conn.execute(
                keys.insert().values(org_id=org_id, kind=kind, key=key, object_id=object_id)
            )
    except IntegrityError as error:
        raise ConflictError(f"{key!r} was already used for a {kind}", "uniqueness_key") from error
