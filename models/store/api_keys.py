"""API keys (SPEC §9): prefixed random secrets, stored only as SHA-256, with scopes.

A key is ``ml_live_`` or ``ml_test_`` followed by 43 URL-safe random characters (256 bits);
being high-entropy, a plain SHA-256 is a sound one-way store. Lookup is by hash and the
hash is compared again with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from models.ids import new_id
from models.organizations import ApiKey
from models.tables import table

SCOPES = ("admin", "read", "ingest")
LAST_USED_RESOLUTION = timedelta(minutes=1)

api_keys = table(ApiKey)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key of an organization, with its scopes."""

    org_id: str
    key_id: str
    scopes: frozenset[str]
    last_used_at: datetime | None = None

    def can(self, scope: str) -> bool:
        """``admin`` implies ``read``; ``ingest`` is only granted explicitly."""
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    conn: AsyncConnection,
    org_id: str,
    scopes: list[str],
    now: datetime,
    *,
    name: str = "",
    environment: str = "live",
) -> tuple[str, str]:
    """Create a key; returns ``(key_id, secret)``. The secret is never stored or shown again."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {SCOPES}, got {scopes}")
    if environment not in ("live", "test"):
        raise ValueError("environment must be live or test")
    secret = f"ml_{environment}_{secrets.token_urlsafe(32)}"
    key_id = new_id("key")
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            org_id=org_id,
            name=name,
            display_prefix=secret[:16],
            key_hash=hash_key(secret),
            scopes=sorted(set(scopes)),
            created_at=now,
        )
    )
    return key_id, secret


async def authenticate(conn: AsyncConnection, secret: str) -> Principal | None:
    """The principal for a presented key, or None (unknown, malformed or revoked)."""
    if not secret.startswith(("ml_live_", "ml_test_")) or len(secret) > 200:
        return None
    digest = hash_key(secret)
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest))).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(row.org_id, row.id, frozenset(row.scopes), row.last_used_at)


async def record_use(conn: AsyncConnection, principal: Principal, now: datetime) -> None:
    """Set ``last_used_at``, at most once a minute per key (a write; call in a unit of work)."""
    last = principal.last_used_at
    if last is None or now - last >= LAST_USED_RESOLUTION:
        query = update(api_keys).where(api_keys.c.id == principal.key_id)
        await conn.execute(query.values(last_used_at=now))


async def revoke_api_key(conn: AsyncConnection, org_id: str, key_id: str, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where((api_keys.c.id == key_id) & (api_keys.c.org_id == org_id))
        .where(api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)
