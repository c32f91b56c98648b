"""Hourly usage rollups: write contributions, read a window's partials.

A rollup row holds the merged :class:`RollupPartial` of one (customer, metric, hour bucket,
group values). Writes add to it with an upsert in the caller's transaction, so events and
rollups never disagree. A window read sums whole buckets in SQL and computes the partial
hours at its edges from raw events (at most two hours of them), so any window is exact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import (
    AggregationType,
    GroupValues,
    LatestValue,
    MetricDefinition,
    RollupPartial,
    UsageEvent,
    match_event,
)
from models.store import dialect
from models.tables import table
from models.usage import UsageDistinct, UsageEventRow, UsageRollup

HOUR = timedelta(hours=1)

rollups = table(UsageRollup)
distinct = table(UsageDistinct)
events = table(UsageEventRow)

WindowPartials = dict[str, list[tuple[GroupValues, RollupPartial]]]


def group_json(group_values: GroupValues) -> str:
    return orjson.dumps(dict(group_values), option=orjson.OPT_SORT_KEYS).decode()


def parse_group_json(text: str) -> GroupValues:
    return tuple(sorted(orjson.loads(text).items()))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def bucket_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _from_micros(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


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
    """What one event adds to the rollups of the metrics it matches."""
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


def _rollup_row(
    org_id: str, key: tuple[str, str, datetime, str], p: RollupPartial
) -> dict[str, Any]:
    customer_id, metric_id, bucket, gjson = key
    latest = p.latest
    return {
        "org_id": org_id,
        "customer_id": customer_id,
        "metric_id": metric_id,
        "bucket": bucket,
        "group_hash": _digest(gjson),
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

    def pick(column: str) -> Any:
        return case((newer, getattr(new, column)), else_=getattr(rollups.c, column))

    return stmt.on_conflict_do_update(
        index_elements=["org_id", "customer_id", "metric_id", "bucket", "group_hash"],
        set_={
            "count": rollups.c.count + new.count,
            "sum": dialect.dec_add(conn, rollups.c.sum, new.sum),
            "max": dialect.dec_greatest(conn, rollups.c.max, new.max),
            "latest_ts_us": pick("latest_ts_us"),
            "latest_tx": pick("latest_tx"),
            "latest_value": pick("latest_value"),
        },
    )


async def apply_contributions(
    conn: AsyncConnection, org_id: str, items: Iterable[Contribution]
) -> int:
    """Add contributions to the rollups (and distinct values); returns cells touched.

    Contributions to the same cell are merged first and cells are written in key order,
    so concurrent writers on PostgreSQL take row locks in the same order (no deadlock).
    """
    merged: dict[tuple[str, str, datetime, str], RollupPartial] = {}
    for item in items:
        key = (item.customer_id, item.metric_id, item.bucket, group_json(item.group_values))
        previous = merged.get(key)
        merged[key] = item.partial if previous is None else previous.merge(item.partial)
    keys = sorted(merged)
    rows = [_rollup_row(org_id, key, merged[key]) for key in keys]
    if rows:
        await conn.execute(_upsert_rollups(conn), rows)
    distinct_rows = [
        {
            "org_id": org_id,
            "customer_id": key[0],
            "metric_id": key[1],
            "bucket": key[2],
            "group_hash": _digest(key[3]),
            "value_hash": _digest(value),
            "group_json": key[3],
            "value": value,
        }
        for key in keys
        for value in sorted(merged[key].distinct)
    ]
    if distinct_rows:
        stmt = dialect.insert(conn, distinct).on_conflict_do_nothing()
        await conn.execute(stmt, distinct_rows)
    return len(rows)


def _ceil_hour(moment: datetime) -> datetime:
    floor = bucket_of(moment)
    return floor if floor == moment else floor + HOUR


async def window_partials(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    metrics: Sequence[MetricDefinition],
    start: datetime,
    end: datetime,
) -> WindowPartials:
    """Per metric id, the merged partial of every group for events in ``[start, end)``."""
    result: WindowPartials = {m.id: [] for m in metrics}
    if not metrics or start >= end:
        return result
    merged: dict[tuple[str, GroupValues], RollupPartial] = {}

    def add(metric_id: str, group: GroupValues, partial: RollupPartial) -> None:
        previous = merged.get((metric_id, group))
        merged[(metric_id, group)] = partial if previous is None else previous.merge(partial)

    first_full, end_full = _ceil_hour(start), bucket_of(end)
    if first_full < end_full:
        await _add_full_buckets(conn, org_id, customer_id, metrics, first_full, end_full, add)
        edges = [(start, first_full), (end_full, end)]
    else:
        edges = [(start, end)]
    for edge_start, edge_end in edges:
        if edge_start < edge_end:
            for event in await _raw_events(conn, org_id, customer_id, edge_start, edge_end):
                for c in contributions_of(customer_id, event, metrics):
                    add(c.metric_id, c.group_values, c.partial)
    for (metric_id, group), partial in sorted(merged.items()):
        result[metric_id].append((group, partial))
    return result


async def _add_full_buckets(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    metrics: Sequence[MetricDefinition],
    start: datetime,
    end: datetime,
    add: Any,
) -> None:
    ids = [m.id for m in metrics]
    where = (
        (rollups.c.org_id == org_id)
        & (rollups.c.customer_id == customer_id)
        & rollups.c.metric_id.in_(ids)
        & (rollups.c.bucket >= start)
        & (rollups.c.bucket < end)
    )
    totals = select(
        rollups.c.metric_id,
        rollups.c.group_json,
        func.sum(rollups.c.count),
        dialect.dec_sum(conn, rollups.c.sum),
        dialect.dec_max(conn, rollups.c.max),
    ).where(where)
    totals = totals.group_by(rollups.c.metric_id, rollups.c.group_hash, rollups.c.group_json)
    for metric_id, gjson, count, total, maximum in await conn.execute(totals):
        add(
            metric_id,
            parse_group_json(gjson),
            RollupPartial(
                count=int(count),
                sum=Decimal(total),
                max=None if maximum is None else Decimal(maximum),
            ),
        )
    latest_ids = [m.id for m in metrics if m.aggregation_type is AggregationType.LATEST]
    if latest_ids:
        rank = (
            func.row_number()
            .over(
                partition_by=(rollups.c.metric_id, rollups.c.group_hash),
                order_by=(
                    rollups.c.latest_ts_us.desc(),
                    dialect.code_point_order(conn, rollups.c.latest_tx).desc(),
                ),
            )
            .label("rank")
        )
        ranked = (
            select(
                rollups.c.metric_id,
                rollups.c.group_json,
                rollups.c.latest_ts_us,
                rollups.c.latest_tx,
                rollups.c.latest_value,
                rank,
            )
            .where(
                where & rollups.c.metric_id.in_(latest_ids) & rollups.c.latest_ts_us.is_not(None)
            )
            .subquery()
        )
        query = select(ranked).where(ranked.c.rank == 1)
        for metric_id, gjson, ts_us, tx, value, _ in await conn.execute(query):
            latest = LatestValue(_from_micros(ts_us), tx, Decimal(value))
            add(metric_id, parse_group_json(gjson), RollupPartial(latest=latest))
    unique_ids = [m.id for m in metrics if m.aggregation_type is AggregationType.UNIQUE]
    if unique_ids:
        query = (
            select(distinct.c.metric_id, distinct.c.group_json, distinct.c.value)
            .where(
                (distinct.c.org_id == org_id)
                & (distinct.c.customer_id == customer_id)
                & distinct.c.metric_id.in_(unique_ids)
                & (distinct.c.bucket >= start)
                & (distinct.c.bucket < end)
            )
            .distinct()
        )
        for metric_id, gjson, value in await conn.execute(query):
            add(metric_id, parse_group_json(gjson), RollupPartial(distinct=frozenset({value})))


def event_from_row(row: Any) -> UsageEvent:
    return UsageEvent(
        transaction_id=row.transaction_id,
        customer_id=row.customer_ref,
        event_type=row.event_type,
        timestamp=row.timestamp,
        properties=row.properties,
    )


async def _raw_events(
    conn: AsyncConnection, org_id: str, customer_id: str, start: datetime, end: datetime
) -> list[UsageEvent]:
    query = select(events).where(
        (events.c.org_id == org_id)
        & (events.c.customer_id == customer_id)
        & (events.c.timestamp >= start)
        & (events.c.timestamp < end)
    )
    return [event_from_row(row) for row in await conn.execute(query)]
