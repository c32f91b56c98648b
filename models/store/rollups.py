"""Usage rollups at three grains: write contributions, read windows and usage series.

A rollup row holds the merged :class:`RollupPartial` of one (customer, metric, grain,
bucket, group values), where the grain is an hour, a UTC day or a UTC calendar month. Each
contribution is added, with an upsert in the caller's transaction, to its hour, its day and
its month, so events and rollups never disagree; distinct values of ``unique`` metrics get
the same three levels.

A read cuts ``[start, end)`` into whole months, whole days and whole hours, and reads the
partial hours at its edges from raw events, so any window is exact and a month-aligned
window costs one row per group. Any number of windows is read with a constant number of
statements: the spans are handed to SQL as one derived table (``json_each`` on SQLite,
``unnest`` of arrays on PostgreSQL) joined to the rollups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import Any

import orjson
from sqlalchemy import (
    Integer,
    SmallInteger,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.selectable import Join
from sqlalchemy.types import TypeEngine

from billing.errors import ValidationError
from billing.metering import (
    AggregationType,
    GroupValues,
    LatestValue,
    MetricDefinition,
    RollupPartial,
    UsageEvent,
    match_event,
    project,
    quantity,
)
from models.store import dialect
from models.tables import table
from models.types import UTCDateTime
from models.usage import UsageDistinct, UsageEventRow, UsageRollup

HOUR = timedelta(hours=1)

rollups = table(UsageRollup)
distinct = table(UsageDistinct)
events = table(UsageEventRow)

WindowPartials = dict[str, list[tuple[GroupValues, RollupPartial]]]
"""Per metric id, ``(group values, merged partial)`` of every group, sorted by group."""


class Grain(IntEnum):
    HOUR = 0
    DAY = 1
    MONTH = 2


SERIES_GRAINS = {"hour": Grain.HOUR, "day": Grain.DAY}


def floor_to(moment: datetime, grain: Grain) -> datetime:
    """The start of the hour, UTC day or UTC month holding ``moment``."""
    if grain is Grain.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    if grain is Grain.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(bucket: datetime, grain: Grain) -> datetime:
    if grain is Grain.HOUR:
        return bucket + HOUR
    if grain is Grain.DAY:
        return bucket + timedelta(days=1)
    year, month = divmod(bucket.month, 12)
    return bucket.replace(year=bucket.year + year, month=month + 1)


def _ceil_to(moment: datetime, grain: Grain) -> datetime:
    floor = floor_to(moment, grain)
    return floor if floor == moment else _next(floor, grain)


def bucket_of(moment: datetime) -> datetime:
    return floor_to(moment, Grain.HOUR)


def group_json(group_values: GroupValues) -> str:
    return orjson.dumps(dict(group_values), option=orjson.OPT_SORT_KEYS).decode()


def parse_group_json(text: str) -> GroupValues:
    return tuple(sorted(orjson.loads(text).items()))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _from_micros(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


# ----------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class Contribution:
    customer_id: str
    metric_id: str
    bucket: datetime
    group_values: GroupValues
    partial: RollupPartial


def contributions_of(
    customer_id: str, event: UsageEvent, metrics: Sequence[MetricDefinition]
) -> list[Contribution]:
    """What one event adds to the rollups of the metrics it matches (its hour bucket)."""
    found = []
    for metric in metrics:
        result = match_event(metric, event)
        if result.partial is not None:
            found.append(
                Contribution(
                    customer_id,
                    metric.id,
                    bucket_of(event.timestamp),
                    result.group_values,
                    result.partial,
                )
            )
    return found


CellKey = tuple[str, str, int, datetime, str]
"""(customer id, metric id, grain, bucket, group json)."""


def _rollup_row(org_id: str, key: CellKey, group_hash: str, p: RollupPartial) -> dict[str, Any]:
    customer_id, metric_id, grain, bucket, gjson = key
    latest = p.latest
    return {
        "org_id": org_id,
        "customer_id": customer_id,
        "metric_id": metric_id,
        "grain": grain,
        "bucket": bucket,
        "group_hash": group_hash,
        "group_json": gjson,
        "count": p.count,
        "sum": p.sum,
        "max": p.max,
        "latest_ts_us": _micros(latest.timestamp) if latest else None,
        "latest_tx": latest.transaction_id if latest else None,
        "latest_value": latest.value if latest else None,
    }


def _upsert_rollups(conn: AsyncConnection) -> Any:
    """The rollup upsert, built without values so its compiled form is cached."""
    stmt = dialect.insert(conn, rollups)
    new = stmt.excluded
    newer = and_(
        new.latest_ts_us.is_not(None),
        or_(
            rollups.c.latest_ts_us.is_(None),
            new.latest_ts_us > rollups.c.latest_ts_us,
            and_(
                new.latest_ts_us == rollups.c.latest_ts_us,
                dialect.code_point_order(conn, new.latest_tx)
                > dialect.code_point_order(conn, rollups.c.latest_tx),
            ),
        ),
    )

    def pick(column_name: str) -> Any:
        return case((newer, getattr(new, column_name)), else_=getattr(rollups.c, column_name))

    return stmt.on_conflict_do_update(
        index_elements=["org_id", "customer_id", "metric_id", "grain", "bucket", "group_hash"],
        set_={
            "count": rollups.c.count + new.count,
            "sum": dialect.dec_add(conn, rollups.c.sum, new.sum),
            "max": dialect.dec_greatest(conn, rollups.c.max, new.max),
            "latest_ts_us": pick("latest_ts_us"),
            "latest_tx": pick("latest_tx"),
            "latest_value": pick("latest_value"),
        },
    )


def _cells(items: Iterable[Contribution]) -> dict[CellKey, RollupPartial]:
    """Contributions merged per hour cell, then each hour cell into its day and month."""
    gjsons: dict[GroupValues, str] = {}
    hourly: dict[CellKey, RollupPartial] = {}
    for item in items:
        gjson = gjsons.get(item.group_values)
        if gjson is None:
            gjson = gjsons[item.group_values] = group_json(item.group_values)
        key = (item.customer_id, item.metric_id, Grain.HOUR, item.bucket, gjson)
        previous = hourly.get(key)
        hourly[key] = item.partial if previous is None else previous.merge(item.partial)
    cells = dict(hourly)
    for (customer_id, metric_id, _, bucket, gjson), partial in hourly.items():
        for grain in (Grain.DAY, Grain.MONTH):
            key = (customer_id, metric_id, grain, floor_to(bucket, grain), gjson)
            previous = cells.get(key)
            cells[key] = partial if previous is None else previous.merge(partial)
    return cells


async def apply_contributions(
    conn: AsyncConnection, org_id: str, items: Iterable[Contribution]
) -> int:
    """Add contributions to the rollups of every grain (and distinct values); returns cells.

    Contributions to the same cell are merged first and cells are written in key order,
    so concurrent writers on PostgreSQL take row locks in the same order (no deadlock).
    """
    cells = _cells(items)
    keys = sorted(cells)
    hashes = {gjson: _digest(gjson) for gjson in {key[4] for key in keys}}
    rows = [_rollup_row(org_id, key, hashes[key[4]], cells[key]) for key in keys]
    if rows:
        await conn.execute(_upsert_rollups(conn), rows)
    distinct_rows = [
        {
            "org_id": org_id,
            "customer_id": key[0],
            "metric_id": key[1],
            "grain": key[2],
            "bucket": key[3],
            "group_hash": hashes[key[4]],
            "value_hash": _digest(value),
            "group_json": key[4],
            "value": value,
        }
        for key in keys
        for value in sorted(cells[key].distinct)
    ]
    if distinct_rows:
        stmt = dialect.insert(conn, distinct).on_conflict_do_nothing()
        await conn.execute(stmt, distinct_rows)
    return len(rows)


# ----------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class _Cover:
    """``[start, end)`` as whole buckets ``(grain, start, end)`` and raw-event edges."""

    spans: tuple[tuple[Grain, datetime, datetime], ...]
    edges: tuple[tuple[datetime, datetime], ...]


def _cover(start: datetime, end: datetime, top: Grain) -> _Cover:
    """Cut ``[start, end)`` into the coarsest whole buckets up to ``top``, finest at edges."""
    spans: list[tuple[Grain, datetime, datetime]] = []
    edges: list[tuple[datetime, datetime]] = []
    left, right = start, end
    finer: Grain | None = None

    def add(grain: Grain | None, lo: datetime, hi: datetime) -> None:
        if lo < hi:
            if grain is None:
                edges.append((lo, hi))
            else:
                spans.append((grain, lo, hi))

    for grain in Grain:
        if grain > top:
            break
        lo, hi = _ceil_to(left, grain), floor_to(right, grain)
        if lo >= hi:
            break
        add(finer, left, lo)
        add(finer, hi, right)
        left, right, finer = lo, hi, grain
    add(finer, left, right)
    return _Cover(tuple(spans), tuple(edges))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to a rollup read")
    return moment.astimezone(UTC)


def _derived_table(
    conn: AsyncConnection, name: str, columns: Sequence[tuple[str, TypeEngine[Any]]], rows: list
) -> FromClause:
    """``rows`` as a table in one bound parameter per column (PostgreSQL) or one in all.

    The SQL text does not depend on the number of rows, so it is compiled (and prepared)
    once whatever the number of windows read.
    """
    if dialect.is_sqlite(conn):
        stamp = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        assert stamp is not None
        is_time = [isinstance(t, UTCDateTime) for _, t in columns]
        payload = [
            [stamp(v) if timed else v for v, timed in zip(row, is_time, strict=True)]
            for row in rows
        ]
        items = func.json_each(bindparam(f"{name}_json", orjson.dumps(payload).decode()))
        source = items.table_valued("value", name=f"{name}_items")
        picked = [
            type_coerce(func.json_extract(source.c.value, f"$[{i}]"), t).label(n)
            for i, (n, t) in enumerate(columns)
        ]
        return select(*picked).select_from(source).subquery(name)
    arrays = []
    for i, (n, t) in enumerate(columns):
        array_type = ARRAY(t)
        values = [row[i] for row in rows]
        arrays.append(cast(bindparam(f"{name}_{n}", values, type_=array_type), array_type))
    return (
        func.unnest(*arrays)
        .table_valued(*(column(n, t) for n, t in columns))
        .render_derived(name=name)
    )


class _DrivenBy(Join):
    """An inner join whose left side drives the loop (SQLite: ``CROSS JOIN``).

    SQLite's planner would otherwise scan the rollups of the whole organization and probe
    the small table of spans for each row.
    """

    inherit_cache = True


@compiles(_DrivenBy, "sqlite")
def _cross_join(join: _DrivenBy, compiler: Any, **kw: Any) -> str:
    text: str = compiler.visit_join(join, **kw)
    left = join.left._compiler_dispatch(compiler, **{**kw, "asfrom": True})
    assert text.startswith(f"{left} JOIN ")
    return f"{left} CROSS JOIN {text[len(left) + len(' JOIN ') :]}"


SPAN_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("tag", Integer()),
    ("customer_id", String()),
    ("metric_id", String()),
    ("grain", SmallInteger()),
    ("lo", UTCDateTime()),
    ("hi", UTCDateTime()),
]
EDGE_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("tag", Integer()),
    ("customer_id", String()),
    ("lo", UTCDateTime()),
    ("hi", UTCDateTime()),
]


@dataclass(frozen=True)
class _Read:
    """Windows ``(tag, customer id, start, end)`` cut into grains up to ``top``.

    Results are keyed by tag, or with ``series`` set by the bucket of that grain holding
    each row or event.
    """

    windows: Sequence[tuple[int, str, datetime, datetime]]
    top: Grain
    series: Grain | None = None


Merged = dict[tuple[Hashable, str, GroupValues], RollupPartial]


class _Merger:
    """Merges partials per (tag or bucket, metric id, group values)."""

    def __init__(self, series: Grain | None) -> None:
        self.series = series
        self.merged: Merged = {}
        self._groups: dict[str, GroupValues] = {}

    def key(self, tag: int, moment: datetime | None) -> Hashable:
        return tag if self.series is None or moment is None else floor_to(moment, self.series)

    def group(self, gjson: str) -> GroupValues:
        found = self._groups.get(gjson)
        if found is None:
            found = self._groups[gjson] = parse_group_json(gjson)
        return found

    def add(self, key: Hashable, metric_id: str, group: GroupValues, p: RollupPartial) -> None:
        cell = (key, metric_id, group)
        previous = self.merged.get(cell)
        self.merged[cell] = p if previous is None else previous.merge(p)


async def _read(
    conn: AsyncConnection, org_id: str, read: _Read, metrics: Sequence[MetricDefinition]
) -> Merged:
    """The merged partials of the windows: at most three statements whatever their number."""
    merger = _Merger(read.series)
    if not metrics:
        return merger.merged
    spans, edges = [], []
    for tag, customer_id, start, end in read.windows:
        cover = _cover(_utc(start), _utc(end), read.top)
        for grain, lo, hi in cover.spans:
            spans.extend((tag, customer_id, m.id, int(grain), lo, hi) for m in metrics)
        edges.extend((tag, customer_id, lo, hi) for lo, hi in cover.edges)
    if spans:
        await _read_rollups(conn, org_id, spans, metrics, merger)
        unique = {m.id for m in metrics if m.aggregation_type is AggregationType.UNIQUE}
        picked = [span for span in spans if span[2] in unique]
        if picked:
            await _read_distinct(conn, org_id, picked, merger)
    if edges:
        await _read_edges(conn, org_id, edges, metrics, merger)
    return merger.merged


async def _read_rollups(
    conn: AsyncConnection,
    org_id: str,
    spans: list[tuple[Any, ...]],
    metrics: Sequence[MetricDefinition],
    merger: _Merger,
) -> None:
    span = _derived_table(conn, "spans", SPAN_COLUMNS, spans)
    latest_ids = {m.id for m in metrics if m.aggregation_type is AggregationType.LATEST}
    figures = [rollups.c.count, rollups.c.sum, rollups.c.max]
    if latest_ids:
        figures += [rollups.c.latest_ts_us, rollups.c.latest_tx, rollups.c.latest_value]
    query = select(
        span.c.tag,
        rollups.c.bucket if merger.series is not None else span.c.tag,
        rollups.c.metric_id,
        rollups.c.group_json,
        *figures,
    ).select_from(_DrivenBy(span, rollups, _span_match(rollups, span, org_id)))
    rows = (await conn.execute(query)).all()
    for tag, bucket, metric_id, gjson, count, total, maximum, *latest in rows:
        if latest and metric_id in latest_ids and latest[0] is not None:
            ts_us, tx, value = latest
            last = LatestValue(_from_micros(ts_us), tx, value)
            partial = RollupPartial(count=count, sum=total, max=maximum, latest=last)
        else:
            partial = RollupPartial(count=count, sum=total, max=maximum)
        merger.add(merger.key(tag, bucket), metric_id, merger.group(gjson), partial)


async def _read_distinct(
    conn: AsyncConnection, org_id: str, spans: list[tuple[Any, ...]], merger: _Merger
) -> None:
    span = _derived_table(conn, "spans", SPAN_COLUMNS, spans)
    query = select(
        span.c.tag,
        distinct.c.bucket if merger.series is not None else span.c.tag,
        distinct.c.metric_id,
        distinct.c.group_json,
        distinct.c.value,
    ).select_from(_DrivenBy(span, distinct, _span_match(distinct, span, org_id)))
    values: dict[tuple[Hashable, str, GroupValues], set[str]] = {}
    for tag, bucket, metric_id, gjson, value in (await conn.execute(query)).all():
        cell = (merger.key(tag, bucket), metric_id, merger.group(gjson))
        values.setdefault(cell, set()).add(value)
    for (key, metric_id, group), found in values.items():
        merger.add(key, metric_id, group, RollupPartial(distinct=frozenset(found)))


async def _read_edges(
    conn: AsyncConnection,
    org_id: str,
    edges: list[tuple[Any, ...]],
    metrics: Sequence[MetricDefinition],
    merger: _Merger,
) -> None:
    """Raw events of the partial hours, matched here as ingest would have."""
    edge = _derived_table(conn, "edges", EDGE_COLUMNS, edges)
    query = select(edge.c.tag, events).select_from(
        _DrivenBy(
            edge,
            events,
            (events.c.org_id == org_id)
            & (events.c.customer_id == edge.c.customer_id)
            & (events.c.timestamp >= edge.c.lo)
            & (events.c.timestamp < edge.c.hi),
        )
    )
    for row in (await conn.execute(query)).all():
        usage = event_from_row(row)
        key = merger.key(row.tag, usage.timestamp)
        for metric in metrics:
            found = match_event(metric, usage)
            if found.partial is not None:
                merger.add(key, metric.id, found.group_values, found.partial)


def _span_match(target: Any, span: FromClause, org_id: str) -> Any:
    return (
        (target.c.org_id == org_id)
        & (target.c.customer_id == span.c.customer_id)
        & (target.c.metric_id == span.c.metric_id)
        & (target.c.grain == span.c.grain)
        & (target.c.bucket >= span.c.lo)
        & (target.c.bucket < span.c.hi)
    )


async def window_partials_many(
    conn: AsyncConnection,
    org_id: str,
    requests: Sequence[tuple[str, datetime, datetime]],
    metrics: Sequence[MetricDefinition],
) -> list[WindowPartials]:
    """Per ``(customer id, start, end)`` request, in order: the window's partials.

    Exact for any window (events in ``[start, end)``), at most three statements whatever
    the number of requests: rollups, distinct values (if a metric is ``unique``) and the
    raw events of partial hours at the windows' edges (if any).
    """
    windows = [(i, c, s, e) for i, (c, s, e) in enumerate(requests) if s < e]
    merged = await _read(conn, org_id, _Read(windows, Grain.MONTH), metrics)
    results: list[WindowPartials] = [{m.id: [] for m in metrics} for _ in requests]
    for (tag, metric_id, group), partial in sorted(merged.items(), key=_by_group):
        assert isinstance(tag, int)
        results[tag][metric_id].append((group, partial))
    return results


def _by_group(item: tuple[tuple[Hashable, str, GroupValues], RollupPartial]) -> GroupValues:
    return item[0][2]


async def window_partials(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    metrics: Sequence[MetricDefinition],
    start: datetime,
    end: datetime,
) -> WindowPartials:
    """Per metric id, the merged partial of every group for events in ``[start, end)``."""
    [found] = await window_partials_many(conn, org_id, [(customer_id, start, end)], metrics)
    return found


async def usage_series(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    window: str,
    group_key: Sequence[str] | None,
) -> list[tuple[datetime, GroupValues, Decimal]]:
    """The metric's quantity per ``window`` ("hour" or "day") bucket and group, by time.

    Each row is ``(bucket start, group values projected on group_key, quantity)`` for the
    events of ``[start, end)`` in that bucket (a bucket cut by ``start`` or ``end`` counts
    only its events inside the window; it keeps its aligned start as label). ``unique``
    counts distinct values within the bucket. Buckets and groups without events are
    omitted. ``group_key`` must be a subset of one of the metric's compound group keys;
    None or empty gives one total series.
    """
    grain = SERIES_GRAINS.get(window)
    if grain is None:
        raise ValidationError("window", f"must be one of {sorted(SERIES_GRAINS)}")
    keys = tuple(group_key or ())
    if keys and not any(set(keys) <= set(compound) for compound in metric.group_keys):
        raise ValidationError(
            "group_key", f"{list(keys)} is not within a group key of metric {metric.name!r}"
        )
    if start >= end:
        return []
    read = _Read([(0, customer_id, start, end)], grain, series=grain)
    merged = await _read(conn, org_id, read, [metric])
    projected: dict[tuple[datetime, GroupValues], RollupPartial] = {}
    for (bucket, _, group), partial in merged.items():
        assert isinstance(bucket, datetime)
        target = (bucket, project(group, keys))
        previous = projected.get(target)
        projected[target] = partial if previous is None else previous.merge(partial)
    return [
        (bucket, group, quantity(metric.aggregation_type, partial))
        for (bucket, group), partial in sorted(projected.items())
    ]


def event_from_row(row: Any) -> UsageEvent:
    return UsageEvent(
        transaction_id=row.transaction_id,
        customer_id=row.customer_ref,
        event_type=row.event_type,
        timestamp=row.timestamp,
        properties=row.properties,
    )
