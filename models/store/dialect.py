"""The few SQL expressions that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, Table, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from models.organizations import Organization
from models.tables import table


def is_sqlite(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "sqlite"


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing/update`` on this dialect."""
    return sqlite.insert(table) if is_sqlite(conn) else postgresql.insert(table)


def dec_add(conn: AsyncConnection, a: Any, b: Any) -> ColumnElement[Any]:
    """Exact decimal ``a + b`` (NULL-tolerant on SQLite's decimal text)."""
    if is_sqlite(conn):
        return func.dec_add(a, b)
    # ExactDecimal's Python-side type is a string type; add as NUMERIC, not as text (||)
    return type_coerce(a, Numeric()) + type_coerce(b, Numeric())


def code_point_order(conn: AsyncConnection, column: Any) -> Any:
    """Compare text by code point, as Python does, whatever the database's collation."""
    return column if is_sqlite(conn) else column.collate("C")


def dec_greatest(conn: AsyncConnection, a: Any, b: Any) -> ColumnElement[Any]:
    return func.dec_max(a, b) if is_sqlite(conn) else func.greatest(a, b)


def dec_sum(conn: AsyncConnection, column: Any) -> ColumnElement[Any]:
    return func.dec_sum(column) if is_sqlite(conn) else func.sum(column)


def dec_max(conn: AsyncConnection, column: Any) -> ColumnElement[Any]:
    return func.dec_max_agg(column) if is_sqlite(conn) else func.max(column)


async def lock_organization(conn: AsyncConnection, org_id: str, *, exclusive: bool) -> None:
    """Serialize metric changes against in-flight ingests of one organization.

    Ingest takes a shared lock, metric creation an exclusive one, so a new metric's
    back-fill watermark sees every event that will not see the metric. SQLite needs
    nothing: its write transactions are already serial (BEGIN IMMEDIATE).
    """
    if is_sqlite(conn):
        return
    organizations = table(Organization)
    query = select(organizations.c.id).where(organizations.c.id == org_id)
    await conn.execute(query.with_for_update(read=not exclusive))
