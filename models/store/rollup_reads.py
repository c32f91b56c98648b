"""Reading usage rollups: exact windows and usage series, batched.

A read cuts ``[start, end)`` into whole months, whole days and whole hours, and reads the
partial hours at its edges from raw events, so any window is exact and a month-aligned
window costs one row per group. Any number of windows is read with a constant number of
statements: the spans are handed to SQL as one derived table (``json_each`` on SQLite,
``unnest`` of arrays on PostgreSQL) joined to the rollups.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Integer,
    SmallInteger,
    String,
    bindparam,
    func,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import FromClause

from billing.errors import ValidationError
from billing.metering import (
    AggregationType,
    GroupValues,
    LatestValue,
    MetricDefinition,
    RollupPartial,
    project,
    quantity,
)
from models.store import dialect
from models.store.bound_rows import Columns, built_query, per_row, rows_params, rows_table
from models.store.rollups import (
    SERIES_GRAINS,
    Grain,
    WindowPartials,
    ceil_to,
    contributions_of,
    distinct,
    event_from_row,
    events,
    floor_to,
    from_micros,
    parse_group_json,
    rollups,
)
from models.types import ExactDecimal, UTCDateTime


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
        lo, hi = ceil_to(left, grain), floor_to(right, grain)
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


SPANS: Columns = (
    ("tag", Integer()),
    ("customer_id", String()),
    ("metric_id", String()),
    ("grain", SmallInteger()),
    ("lo", UTCDateTime()),
    ("hi", UTCDateTime()),
)
EDGES: Columns = (
    ("tag", Integer()),
    ("customer_id", String()),
    ("lo", UTCDateTime()),
    ("hi", UTCDateTime()),
)


def _in_span(target: Any, span: FromClause) -> Any:
    return (
        (target.c.org_id == bindparam("org_id"))
        & (target.c.customer_id == span.c.customer_id)
        & (target.c.metric_id == span.c.metric_id)
        & (target.c.grain == span.c.grain)
        & (target.c.bucket >= span.c.lo)
        & (target.c.bucket < span.c.hi)
    )


def _figures_query(conn: AsyncConnection, by_bucket: bool) -> Any:
    """count / sum / max of every rollup row of the spans."""
    span = rows_table(conn, "spans", SPANS)
    source, r = per_row(conn, span, rollups, _in_span(rollups, span))
    key = r.bucket if by_bucket else span.c.tag
    return select(key, r.metric_id, r.group_json, r.count, r.sum, r.max).select_from(source)


def _totals_query(conn: AsyncConnection, by_bucket: bool) -> Any:
    """count / sum / max merged per (window tag, metric, group) in SQL: for windows of
    several spans (a month-aligned window has one row per group, nothing to merge)."""
    span = rows_table(conn, "spans", SPANS)
    source, r = per_row(conn, span, rollups, _in_span(rollups, span))
    return (
        select(
            span.c.tag,
            r.metric_id,
            func.min(r.group_json),
            func.sum(r.count),
            type_coerce(dialect.dec_sum(conn, r.sum), ExactDecimal()),
            type_coerce(dialect.dec_max(conn, r.max), ExactDecimal()),
        )
        .select_from(source)
        .group_by(span.c.tag, r.metric_id, r.group_hash)
    )


def _latest_query(conn: AsyncConnection, by_bucket: bool) -> Any:
    """The latest value of every row of the spans (spans of ``latest`` metrics only)."""
    span = rows_table(conn, "spans", SPANS)
    on = _in_span(rollups, span) & rollups.c.latest_ts_us.is_not(None)
    source, r = per_row(conn, span, rollups, on)
    key = r.bucket if by_bucket else span.c.tag
    return select(
        key, r.metric_id, r.group_json, r.latest_ts_us, r.latest_tx, r.latest_value
    ).select_from(source)


def _distinct_query(conn: AsyncConnection, by_bucket: bool) -> Any:
    span = rows_table(conn, "spans", SPANS)
    source, d = per_row(conn, span, distinct, _in_span(distinct, span))
    key = d.bucket if by_bucket else span.c.tag
    return select(key, d.metric_id, d.group_json, d.value).select_from(source).distinct()


def _edges_query(conn: AsyncConnection, by_bucket: bool) -> Any:
    edge = rows_table(conn, "edges", EDGES)
    on = (
        (events.c.org_id == bindparam("org_id"))
        & (events.c.customer_id == edge.c.customer_id)
        & (events.c.timestamp >= edge.c.lo)
        & (events.c.timestamp < edge.c.hi)
    )
    source, e = per_row(conn, edge, events, on)
    return select(edge.c.tag, *e).select_from(source)


Cell = tuple[Hashable, str, GroupValues]
"""(window tag or series bucket, metric id, group values)."""


async def _read(
    conn: AsyncConnection,
    org_id: str,
    windows: Sequence[tuple[int, str, datetime, datetime]],
    metrics: Sequence[MetricDefinition],
    top: Grain,
    series: Grain | None = None,
) -> dict[Cell, RollupPartial]:
    """Merged partials of windows ``(tag, customer id, start, end)`` cut into grains up to
    ``top``, per tag (or, with ``series``, per bucket of that grain), in at most four
    statements whatever the number of windows: rollup figures, latest values (if a metric
    is ``latest``), distinct values (if one is ``unique``) and raw events of the edges."""
    merged: dict[Cell, RollupPartial] = {}
    spans: list[tuple[Any, ...]] = []
    edges: list[tuple[Any, ...]] = []
    several = False
    for tag, customer_id, start, end in windows:
        cover = _cover(_utc(start), _utc(end), top)
        several = several or len(cover.spans) > 1
        for grain, lo, hi in cover.spans:
            spans.extend((tag, customer_id, m.id, int(grain), lo, hi) for m in metrics)
        edges.extend((tag, customer_id, lo, hi) for lo, hi in cover.edges)
    groups: dict[str, GroupValues] = {}

    def add(cell: Cell, partial: RollupPartial) -> None:
        previous = merged.get(cell)
        merged[cell] = partial if previous is None else previous.merge(partial)

    def cell_of(key: Hashable, metric_id: str, gjson: str) -> Cell:
        """The cell of a row keyed by window tag, or by bucket floored to ``series``."""
        found = groups.get(gjson)
        if found is None:
            found = groups[gjson] = parse_group_json(gjson)
        if series is not None:
            assert isinstance(key, datetime)
            key = floor_to(key, series)
        return key, metric_id, found

    by_bucket = series is not None

    def spans_of(ids: set[str] | None) -> dict[str, Any]:
        picked = spans if ids is None else [span for span in spans if span[2] in ids]
        return {"org_id": org_id, **rows_params(conn, "spans", SPANS, picked)}

    if spans:
        merge_in_sql = several and not by_bucket
        query = built_query(conn, _totals_query if merge_in_sql else _figures_query, by_bucket)
        for key, metric_id, gjson, count, total, maximum in (
            await conn.execute(query, spans_of(None))
        ).all():
            cell = cell_of(key, metric_id, gjson)
            add(cell, RollupPartial(count=int(count), sum=total, max=maximum))
        latest_ids = {m.id for m in metrics if m.aggregation_type is AggregationType.LATEST}
        if latest_ids:
            query = built_query(conn, _latest_query, by_bucket)
            for key, metric_id, gjson, ts_us, tx, value in (
                await conn.execute(query, spans_of(latest_ids))
            ).all():
                cell = cell_of(key, metric_id, gjson)
                add(cell, RollupPartial(latest=LatestValue(from_micros(ts_us), tx, value)))
        unique_ids = {m.id for m in metrics if m.aggregation_type is AggregationType.UNIQUE}
        if unique_ids:
            values: dict[Cell, set[str]] = {}
            query = built_query(conn, _distinct_query, by_bucket)
            for key, metric_id, gjson, value in (
                await conn.execute(query, spans_of(unique_ids))
            ).all():
                cell = cell_of(key, metric_id, gjson)
                values.setdefault(cell, set()).add(value)
            for cell, found in values.items():
                add(cell, RollupPartial(distinct=frozenset(found)))
    if edges:
        params = {"org_id": org_id, **rows_params(conn, "edges", EDGES, edges)}
        for row in (await conn.execute(built_query(conn, _edges_query, False), params)).all():
            usage = event_from_row(row)
            key = row.tag if series is None else floor_to(usage.timestamp, series)
            for c in contributions_of("", usage, metrics):
                add((key, c.metric_id, c.group_values), c.partial)
    return merged


async def window_partials_many(
    conn: AsyncConnection,
    org_id: str,
    requests: Sequence[tuple[str, datetime, datetime]],
    metrics: Sequence[MetricDefinition],
) -> list[WindowPartials]:
    """Per ``(customer id, start, end)`` request, in order: the window's partials.

    Exact for any window (events in ``[start, end)``). At most four statements whatever
    the number of requests: rollup figures, latest values (if a metric is ``latest``),
    distinct values (if one is ``unique``) and the raw events of the partial hours at the
    windows' edges (if any). A month-aligned window reads one row per (metric, group).
    """
    results: list[WindowPartials] = [{m.id: [] for m in metrics} for _ in requests]
    windows = [(i, c, s, e) for i, (c, s, e) in enumerate(requests) if s < e]
    if not windows or not metrics:
        return results
    for (tag, metric_id, group), partial in (
        await _read(conn, org_id, windows, metrics, Grain.MONTH)
    ).items():
        assert isinstance(tag, int)
        results[tag][metric_id].append((group, partial))
    for result in results:
        for partials in result.values():
            partials.sort(key=itemgetter(0))
    return results


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
    merged = await _read(conn, org_id, [(0, customer_id, start, end)], [metric], grain, grain)
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
