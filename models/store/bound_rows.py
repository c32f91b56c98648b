"""Many parameter rows as one SQL table, joined so each row drives an index range scan.

Batched reads hand SQL a list of rows (e.g. spans of a window per customer and metric) as
one derived table bound at execution: the SQL text is fixed whatever the number of rows,
so it is compiled and prepared once, and each row is joined to its matching rows of a
target table by an index range scan instead of a scan of the whole organization.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from sqlalchemy import (
    String,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.selectable import Join
from sqlalchemy.types import TypeEngine

from models.store import dialect
from models.types import UTCDateTime


class _DrivenBy(Join):
    """An inner join whose left side drives the loop (SQLite: ``CROSS JOIN``).

    SQLite's planner would otherwise scan the organization's rollups and probe the small
    table of spans for each row.
    """

    inherit_cache = True


@compiles(_DrivenBy, "sqlite")
def _cross_join(join: _DrivenBy, compiler: Any, **kw: Any) -> str:
    text: str = compiler.visit_join(join, **kw)
    left = join.left._compiler_dispatch(compiler, **{**kw, "asfrom": True})
    assert text.startswith(f"{left} JOIN ")
    return f"{left} CROSS JOIN {text[len(left) + len(' JOIN ') :]}"


Columns = tuple[tuple[str, TypeEngine[Any]], ...]

IN_CHUNK = 5000
"""Ids per ``IN`` list (PostgreSQL takes at most 32,767 bound parameters a statement)."""


def in_chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    """Distinct ``ids``, sorted, in lists short enough for one ``IN`` each."""
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), IN_CHUNK):
        yield wanted[start : start + IN_CHUNK]


def rows_table(conn: AsyncConnection, name: str, columns: Columns) -> FromClause:
    """A table of rows bound at execution (:func:`rows_params`) in a fixed SQL text, so
    it is compiled (and prepared) once whatever the number of rows: ``json_each`` of one
    JSON parameter on SQLite, ``unnest`` of one array per column on PostgreSQL."""
    if dialect.is_sqlite(conn):
        items = func.json_each(bindparam(name, type_=String())).table_valued("value")
        picked = [
            type_coerce(func.json_extract(items.c.value, f"$[{i}]"), kind).label(column_name)
            for i, (column_name, kind) in enumerate(columns)
        ]
        return select(*picked).select_from(items).subquery(name)
    arrays = [
        cast(bindparam(f"{name}_{column_name}", type_=ARRAY(kind)), ARRAY(kind))
        for column_name, kind in columns
    ]
    typed = (column(column_name, kind) for column_name, kind in columns)
    return func.unnest(*arrays).table_valued(*typed).render_derived(name=name)


def rows_params(
    conn: AsyncConnection, name: str, columns: Columns, rows: list[tuple[Any, ...]]
) -> dict[str, Any]:
    if dialect.is_sqlite(conn):
        stamp = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        assert stamp is not None
        timed = [i for i, (_, kind) in enumerate(columns) if isinstance(kind, UTCDateTime)]
        payload = [list(row) for row in rows]
        for row in payload:
            for i in timed:
                row[i] = stamp(row[i])
        return {name: orjson.dumps(payload).decode()}
    return {f"{name}_{n}": [row[i] for row in rows] for i, (n, _) in enumerate(columns)}


def per_row(conn: AsyncConnection, rows: FromClause, target: Any, on: Any) -> tuple[Any, Any]:
    """``rows`` joined to the ``target`` rows ``on`` each of them, the small table of rows
    driving the loop so every one is an index range scan; returns (from, target columns).

    Left to themselves the planners scan the whole organization instead: SQLite probes the
    rows for each rollup (so: ``CROSS JOIN``), PostgreSQL hashes them (its estimates of a
    join on parameters cannot see that a month is ~1 row per group; so: ``LATERAL``, with
    ``OFFSET 0`` so the subquery is not pulled up into a hash join again).
    """
    if dialect.is_sqlite(conn):
        return _DrivenBy(rows, target, on), target.c
    # a literal OFFSET 0: a bound one lets the planner pull the subquery up all the same
    fence: Any = literal_column("0")
    matching = select(target).where(on).offset(fence).lateral(f"{target.name}_of_row")
    return rows.join(matching, true()), matching.c


_built: dict[tuple[str, Callable[..., Any], tuple[Any, ...]], Any] = {}


def built_query(conn: AsyncConnection, build: Callable[..., Any], *args: Any) -> Any:
    """``build(conn, *args)``, built once per dialect and arguments, so SQLAlchemy's
    compiled cache is hit and no statement is constructed per call."""
    key = (conn.dialect.name, build, args)
    found = _built.get(key)
    if found is None:
        found = _built[key] = build(conn, *args)
    return found
