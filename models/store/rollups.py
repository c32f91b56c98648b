"""Usage rollups at three grains: the cells and the contributions ingest writes.

A rollup row holds the merged :class:`RollupPartial` of one (customer, metric, grain,
bucket, group values), where the grain is an hour, a UTC day or a UTC calendar month. Each
contribution is added, with an upsert in the caller's transaction, to its hour, its day and
its month, so events and rollups never disagree; distinct values of ``unique`` metrics get
the same three levels. Reads are in :mod:`models.store.rollup_reads`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

import orjson
from sqlalchemy import (
    and_,
    case,
    or_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.metering import (
    GroupValues,
    MetricDefinition,
    RollupPartial,
    UsageEvent,
    match_event,
)
from models.store import dialect
from models.store.bound_rows import built_query
from models.tables import table
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
COARSE_GRAINS = (Grain.DAY, Grain.MONTH)


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


def ceil_to(moment: datetime, grain: Grain) -> datetime:
    floor = floor_to(moment, grain)
    return floor if floor == moment else _next(floor, grain)


def bucket_of(moment: datetime) -> datetime:
    return floor_to(moment, Grain.HOUR)


def group_json(group_values: GroupValues) -> str:
    return orjson.dumps(dict(group_values), option=orjson.OPT_SORT_KEYS).decode()


def parse_group_json(text: str) -> GroupValues:
    return tuple(sorted(orjson.loads(text).items()))


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def from_micros(micros: int) -> datetime:
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
    bucket = bucket_of(event.timestamp)
    for metric in metrics:
        result = match_event(metric, event)
        if result.partial is not None:
            found.append(
                Contribution(customer_id, metric.id, bucket, result.group_values, result.partial)
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


def _insert_distinct(conn: AsyncConnection) -> Any:
    return dialect.insert(conn, distinct).on_conflict_do_nothing()


def _cells(items: Iterable[Contribution]) -> dict[CellKey, RollupPartial]:
    """Contributions merged per hour cell, then each hour cell into its day and month."""
    gjsons: dict[GroupValues, str] = {}
    hourly: dict[CellKey, RollupPartial] = {}
    for item in items:
        gjson = gjsons.get(item.group_values)
        if gjson is None:
            gjson = gjsons[item.group_values] = group_json(item.group_values)
        key: CellKey = (item.customer_id, item.metric_id, Grain.HOUR, item.bucket, gjson)
        previous = hourly.get(key)
        hourly[key] = item.partial if previous is None else previous.merge(item.partial)
    cells = dict(hourly)
    coarse: dict[datetime, tuple[tuple[Grain, datetime], ...]] = {}
    for (customer_id, metric_id, _, bucket, gjson), partial in hourly.items():
        above = coarse.get(bucket)
        if above is None:
            above = coarse[bucket] = tuple((g, floor_to(bucket, g)) for g in COARSE_GRAINS)
        for grain, start in above:
            key = (customer_id, metric_id, grain, start, gjson)
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
    hashes = {gjson: digest(gjson) for gjson in {key[4] for key in keys}}
    rows = [_rollup_row(org_id, key, hashes[key[4]], cells[key]) for key in keys]
    if rows:
        await conn.execute(built_query(conn, _upsert_rollups), rows)
    distinct_rows = [
        {
            "org_id": org_id,
            "customer_id": key[0],
            "metric_id": key[1],
            "grain": key[2],
            "bucket": key[3],
            "group_hash": hashes[key[4]],
            "value_hash": digest(value),
            "group_json": key[4],
            "value": value,
        }
        for key in keys
        for value in sorted(cells[key].distinct)
    ]
    if distinct_rows:
        await conn.execute(built_query(conn, _insert_distinct), distinct_rows)
    return len(rows)


# ----------------------------------------------------------------------------- reads


def event_from_row(row: Any) -> UsageEvent:
    return UsageEvent(
        transaction_id=row.transaction_id,
        customer_id=row.customer_ref,
        event_type=row.event_type,
        timestamp=row.timestamp,
        properties=row.properties,
    )
