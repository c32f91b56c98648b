"""Helpers shared by the integration tests: event builders, metrics, raw posts, recomputation.

Everything goes through the real app, database and Redis of the ``env`` fixture; the only
pure code used here is ``billing.metering``, as the reference the storage must agree with.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from billing.events import parse_rfc3339
from billing.metering import (
    AggregationType,
    EventTypeFilter,
    GroupValues,
    MetricDefinition,
    PropertyFilter,
    RollupPartial,
    UsageEvent,
    aggregate,
    match_event,
    merge_by_group,
)
from models.store.customers import create_customer
from models.store.event_search import FoundEvent, search_events
from models.store.metrics import create_metric
from models.store.rollup_reads import window_partials
from tests.conftest import START, Env

NOW = START
_names = itertools.count(1)


def iso(moment: datetime) -> str:
    """RFC 3339 with a ``Z`` and microseconds when there are any."""
    text_ = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text_ += f".{moment.microsecond:06d}"
    return text_ + "Z"


def event(
    tx: str,
    customer: str = "cust-1",
    event_type: str = "api_call",
    timestamp: datetime | str | None = None,
    properties: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """One wire event (snake_case, as SPEC §1)."""
    ts = timestamp if timestamp is not None else NOW - timedelta(hours=1)
    body: dict[str, Any] = {
        "transaction_id": tx,
        "customer_id": customer,
        "event_type": event_type,
        "timestamp": ts if isinstance(ts, str) else iso(ts),
        "properties": {} if properties is None else properties,
    }
    body.update(extra)
    return body


def unique_name(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_raw(
    env: Env,
    body: bytes | Any,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST exact bytes (or a byte iterator) to /v1/ingest."""
    all_headers = {"Content-Type": "application/json", **auth(key or env.ingest_key)}
    all_headers.update(headers or {})
    return await env.client.post("/v1/ingest", content=body, headers=all_headers)


async def post_gzip(env: Env, payload: bytes, *, key: str | None = None) -> httpx.Response:
    return await post_raw(
        env, gzip.compress(payload), key=key, headers={"Content-Encoding": "gzip"}
    )


def number(text_: str) -> str:
    """Mark a property value to be written as a bare JSON number by :func:`dumps_numbers`."""
    return f"@@num:{text_}@@"


def dumps_numbers(payload: Any) -> bytes:
    """``json.dumps`` where values made by :func:`number` become raw JSON numbers."""
    out = json.dumps(payload)
    while '"@@num:' in out:
        start = out.index('"@@num:')
        end = out.index('@@"', start)
        out = out[:start] + out[start + len('"@@num:') : end] + out[end + 3 :]
    return out.encode()


def to_usage(raw: dict[str, Any]) -> UsageEvent:
    """A wire event as the server stores it (JSON numbers become their decimal text)."""
    decoded = json.loads(dumps_numbers(raw), parse_float=Decimal)
    stamp = parse_rfc3339(decoded["timestamp"])
    assert stamp is not None
    return UsageEvent(
        transaction_id=decoded["transaction_id"],
        customer_id=decoded["customer_id"],
        event_type=decoded["event_type"],
        timestamp=stamp,
        properties={k: str(v) for k, v in (decoded.get("properties") or {}).items()},
    )


def metric_definition(
    name: str,
    aggregation: str,
    *,
    key: str | None = None,
    group_keys: Sequence[Sequence[str]] = (),
    event_types: Sequence[str] | None = None,
    not_event_types: Sequence[str] | None = None,
    extra_filters: Sequence[PropertyFilter] = (),
) -> MetricDefinition:
    """A valid definition: the aggregation key and group keys get ``exists: true`` filters."""
    required = ([key] if key else []) + [k for compound in group_keys for k in compound]
    filters = [PropertyFilter(name=n, exists=True) for n in dict.fromkeys(required)]
    return MetricDefinition(
        id="",
        name=name,
        aggregation_type=AggregationType(aggregation),
        event_type_filter=EventTypeFilter(
            tuple(event_types) if event_types is not None else None,
            tuple(not_event_types) if not_event_types is not None else None,
        ),
        property_filters=tuple(filters) + tuple(extra_filters),
        aggregation_key=key,
        group_keys=tuple(tuple(c) for c in group_keys),
    )


def with_id(metric: MetricDefinition, metric_id: str) -> MetricDefinition:
    return MetricDefinition(
        id=metric_id,
        name=metric.name,
        aggregation_type=metric.aggregation_type,
        event_type_filter=metric.event_type_filter,
        property_filters=metric.property_filters,
        aggregation_key=metric.aggregation_key,
        group_keys=metric.group_keys,
    )


async def add_metric(
    env: Env, metric: MetricDefinition, org_id: str | None = None
) -> MetricDefinition:
    async with env.write() as conn:
        metric_id = await create_metric(conn, org_id or env.org_id, metric, env.clock())
    return with_id(metric, metric_id)


async def add_customer(
    env: Env, name: str, aliases: Iterable[str] = (), org_id: str | None = None
) -> str:
    async with env.write() as conn:
        return await create_customer(
            conn, org_id or env.org_id, name, env.clock(), ingest_aliases=list(aliases)
        )


async def window(
    env: Env,
    customer_id: str,
    metrics: Sequence[MetricDefinition],
    start: datetime,
    end: datetime,
    org_id: str | None = None,
) -> dict[str, dict[GroupValues, RollupPartial]]:
    async with env.read() as conn:
        found = await window_partials(conn, org_id or env.org_id, customer_id, metrics, start, end)
    return {metric_id: dict(groups) for metric_id, groups in found.items()}


def recompute(
    events: Iterable[UsageEvent],
    metrics: Sequence[MetricDefinition],
    start: datetime,
    end: datetime,
) -> dict[str, dict[GroupValues, RollupPartial]]:
    """The reference: ``billing.metering`` applied to raw events in ``[start, end)``."""
    chosen = [e for e in events if start <= e.timestamp < end]
    result: dict[str, dict[GroupValues, RollupPartial]] = {}
    for metric in metrics:
        pairs = []
        for e in chosen:
            judged = match_event(metric, e)
            if judged.partial is not None:
                pairs.append((judged.group_values, judged.partial))
        result[metric.id] = merge_by_group(pairs, metric.rollup_keys)
    return result


def figures(metric: MetricDefinition, partial: RollupPartial) -> dict[str, Any]:
    """The figures of a partial that the metric's aggregation depends on."""
    kind = metric.aggregation_type
    out: dict[str, Any] = {"count": partial.count}
    if kind in (AggregationType.SUM, AggregationType.MAX, AggregationType.LATEST):
        out["sum"] = partial.sum
        out["max"] = partial.max
    if kind is AggregationType.LATEST:
        latest = partial.latest
        out["latest"] = (
            None if latest is None else (latest.timestamp, latest.transaction_id, latest.value)
        )
    if kind is AggregationType.UNIQUE:
        out["distinct"] = partial.distinct
    return out


def comparable(
    metrics: Sequence[MetricDefinition], found: dict[str, dict[GroupValues, RollupPartial]]
) -> dict[str, dict[GroupValues, dict[str, Any]]]:
    return {
        m.id: {group: figures(m, p) for group, p in found.get(m.id, {}).items()} for m in metrics
    }


def assert_same_usage(
    metrics: Sequence[MetricDefinition],
    got: dict[str, dict[GroupValues, RollupPartial]],
    want: dict[str, dict[GroupValues, RollupPartial]],
    context: str,
) -> None:
    """``got`` (read from the rollups) equals ``want`` (:func:`recompute`): every figure of
    every group, and every metric's quantity in total and by each of its group keys."""
    assert comparable(metrics, got) == comparable(metrics, want), context
    for metric in metrics:
        for keys in [(), *metric.group_keys]:
            got_q = aggregate(metric, got.get(metric.id, {}).items(), keys)
            want_q = aggregate(metric, want.get(metric.id, {}).items(), keys)
            assert got_q == want_q, (metric.name, keys, context)


async def search(
    env: Env, tx_ids: Sequence[str], org_id: str | None = None
) -> dict[str, FoundEvent]:
    async with env.read() as conn:
        found = await search_events(conn, org_id or env.org_id, tx_ids)
    return {f.transaction_id: f for f in found}


async def sql_rows(env: Env, sql: str, **params: Any) -> list[Any]:
    async with env.read() as conn:
        return list(await conn.execute(text(sql), params))


async def sql_value(env: Env, sql: str, **params: Any) -> Any:
    async with env.read() as conn:
        return (await conn.execute(text(sql), params)).scalar()


def quantity_total(partials: dict[GroupValues, RollupPartial]) -> tuple[int, Decimal]:
    """(count, sum) over every group."""
    count = sum(p.count for p in partials.values())
    total = sum((p.sum for p in partials.values()), Decimal(0))
    return count, total
