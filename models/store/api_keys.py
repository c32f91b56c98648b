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

from billing.errors import ValidationError
from models.ids import new_id
from models.organizations import ApiKey, CustomerToken
from models.store.customers import check_customer
from models.tables import table

SCOPES = ("admin", "read", "ingest")
LAST_USED_RESOLUTION = timedelta(minutes=1)

TOKEN_PREFIX = "ml_ct_"
MAX_TOKEN_TTL = timedelta(days=1)

api_keys = table(ApiKey)
tokens = table(CustomerToken)


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key of an organization, with its scopes."""

    org_id: str
    key_id: str
    scopes: frozenset[str]
    last_used_at: datetime | None = None
    customer_id: str | None = None
    """Set for a customer token: the one customer it may see."""

    def can(self, scope: str) -> bool:
        """``admin`` implies ``read``; ``ingest`` is only granted explicitly. A customer
        token holds no scope: resolvers that serve customers check ``customer_id``."""
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
        raise ValidationError("scopes", f"must be a non-empty subset of {list(SCOPES)}")
    if environment not in ("live", "test"):
        raise ValidationError("environment", "must be live or test")
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


async def authenticate(conn: AsyncConnection, secret: str, now: datetime) -> Principal | None:
    """The principal for a presented key or customer token, or None (unknown, malformed,
    revoked or expired)."""
    if secret.startswith(TOKEN_PREFIX) and len(secret) <= 200:
        return await _token_principal(conn, secret, now)
    if not secret.startswith(("ml_live_", "ml_test_")) or len(secret) > 200:
        return None
    digest = hash_key(secret)
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest))).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Principal(row.org_id, row.id, frozenset(row.scopes), row.last_used_at)


def use_is_due(principal: Principal, now: datetime) -> bool:
    """True when an API key's ``last_used_at`` is older than a minute (or unset)."""
    last = principal.last_used_at
    return principal.customer_id is None and (last is None or now - last >= LAST_USED_RESOLUTION)


async def record_use(conn: AsyncConnection, principal: Principal, now: datetime) -> None:
    """Set ``last_used_at``, at most once a minute per key (a write; call in a unit of work)."""
    if use_is_due(principal, now):
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


async def create_customer_token(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    ttl: timedelta,
    now: datetime,
    *,
    actor: str,
) -> tuple[str, datetime]:
    """Mint a token that sees one customer for ``ttl`` (1 s to 1 day): ``(token, expiry)``.
    Only its SHA-256 is stored."""
    if not timedelta(seconds=1) <= ttl <= MAX_TOKEN_TTL:
        raise ValidationError("ttl_seconds", "must be between 1 and 86400")
    await check_customer(conn, org_id, customer_id)
    secret = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    expires_at = now + ttl
    await conn.execute(
        tokens.insert().values(
            id=new_id("ctok"),
            org_id=org_id,
            customer_id=customer_id,
            token_hash=hash_key(secret),
            created_by=actor,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return secret, expires_at


async def _token_principal(conn: AsyncConnection, secret: str, now: datetime) -> Principal | None:
    digest = hash_key(secret)
    row = (await conn.execute(select(tokens).where(tokens.c.token_hash == digest))).first()
    if row is None or row.expires_at <= now or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(row.org_id, row.id, frozenset(), now, customer_id=row.customer_id)


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    name: str
    display_prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def list_api_keys(
    conn: AsyncConnection, org_id: str, key_id: str | None = None
) -> list[ApiKeyRecord]:
    """The organization's keys (or the one ``key_id``; never their secrets), oldest first."""
    where = api_keys.c.org_id == org_id
    if key_id is not None:
        where &= api_keys.c.id == key_id
    query = select(api_keys).where(where).order_by(api_keys.c.created_at, api_keys.c.id)
    return [
        ApiKeyRecord(
            r.id,
            r.name,
            r.display_prefix,
            list(r.scopes),
            r.created_at,
            r.last_used_at,
            r.revoked_at,
        )
        for r in await conn.execute(query)
    ]
