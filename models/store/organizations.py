"""Organizations (tenants)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import NotFoundError
from models.ids import new_id
from models.organizations import Organization
from models.store import dialect
from models.tables import table

organizations = table(Organization)


async def get_or_create_organization(conn: AsyncConnection, name: str, now: datetime) -> str:
    """The id of the organization called ``name``, created if missing (race-safe)."""
    stmt = dialect.insert(conn, organizations).values(id=new_id("org"), name=name, created_at=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    found = await conn.execute(select(organizations.c.id).where(organizations.c.name == name))
    return str(found.scalar_one())


async def get_organization(conn: AsyncConnection, org_id: str) -> Organization | None:
    row = (await conn.execute(select(organizations).where(organizations.c.id == org_id))).first()
    return None if row is None else Organization.model_validate(row._mapping)


async def grace_of(conn: AsyncConnection, org_id: str, default: timedelta) -> timedelta:
    """The organization's grace period (its own setting, else the installation's)."""
    query = select(organizations.c.grace_period_seconds).where(organizations.c.id == org_id)
    seconds = (await conn.execute(query)).scalar_one_or_none()
    return default if seconds is None else timedelta(seconds=seconds)


async def organization_named(conn: AsyncConnection, name: str) -> str:
    """The id of the organization called ``name`` (never created here: NotFoundError)."""
    found = await conn.execute(select(organizations.c.id).where(organizations.c.name == name))
    org_id = found.scalar_one_or_none()
    if org_id is None:
        raise NotFoundError(f"no organization is named {name!r}")
    return str(org_id)
