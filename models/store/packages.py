"""Packages: contract templates (validated by the core) and contracts made from them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contracts import Contract
from billing.errors import NotFoundError
from billing.packages import Package, instantiate, validate_package
from models.codec import decode, to_json
from models.ids import new_id
from models.packages import PackageRow
from models.store.catalog import rate_card_currency
from models.store.contracts import check_products
from models.store.pages import page
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

packages = table(PackageRow)


@dataclass(frozen=True)
class PackageRecord:
    package: Package
    archived_at: datetime | None


async def create_package(
    conn: AsyncConnection,
    org_id: str,
    package: Package,
    now: datetime,
    uniqueness_key: str | None = None,
) -> Package:
    stored = replace(package, id=new_id("pkg"))
    validate_package(stored)
    await rate_card_currency(conn, org_id, stored.rate_card_id)
    await check_products(conn, org_id, instantiate(stored, "", now, new_id))
    await claim_uniqueness_key(conn, org_id, "package", uniqueness_key, stored.id)
    await conn.execute(
        packages.insert().values(
            id=stored.id,
            org_id=org_id,
            name=stored.name,
            document=to_json(stored),
            created_at=now,
        )
    )
    return stored


async def package_contract(
    conn: AsyncConnection, org_id: str, package_id: str, customer_id: str, starting_at: datetime
) -> Contract:
    """The contract a live package of ``org_id`` describes (not stored yet)."""
    row = (
        await conn.execute(
            select(packages).where(
                (packages.c.id == package_id)
                & (packages.c.org_id == org_id)
                & packages.c.archived_at.is_(None)
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no package {package_id!r}", "package_id")
    return instantiate(decode(Package, row.document), customer_id, starting_at, new_id)


async def packages_page(
    conn: AsyncConnection, org_id: str, first: int, after: str | None
) -> tuple[list[tuple[str, PackageRecord]], bool]:
    query = select(packages).where(packages.c.org_id == org_id)
    found = await page(conn, query, packages.c.created_at, packages.c.id, first, after)
    return [
        (cursor, PackageRecord(decode(Package, row.document), row.archived_at))
        for cursor, row in found.rows
    ], found.has_next
