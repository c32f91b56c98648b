"""Rollups equal a recomputation from raw events (DESIGN: path of one event, step 2).

A randomized stream is sent through ``POST /v1/ingest`` (re-sends included); for several
windows, aligned on months, days or hours or not, crossing day and month boundaries,
``window_partials`` (one window) and ``window_partials_many`` (every customer × window in
one call) must equal ``billing.metering`` applied directly to the accepted events, windows
must partition: ``[a,b) + [b,c) = [a,c)``, and ``usage_series`` (hour and day buckets, by
group and in total) must equal the same recomputation bucket by bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event

from billing.errors import ValidationError
from billing.metering import (
    GroupValues,
    MetricDefinition,
    PropertyFilter,
    RollupPartial,
    UsageEvent,
    aggregate,
)
from models.store.rollup_reads import usage_series, window_partials_many
from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    assert_same_usage,
    auth,
    comparable,
    dumps_numbers,
    event,
    iso,
    metric_definition,
    number,
    recompute,
    to_usage,
    unique_name,
    window,
)

BASE = NOW - timedelta(days=30)
REGIONS = ["eu", "us", "EU", "é", " "]
MODELS = ["gpt", "claude", "llama"]
USERS = ["u1", "u2", "U1", "u3"]
EVENT_TYPES = ["api_call", "tokens", "page_view"]
NOT_DECIMALS = ["abc", "", "NaN", "Infinity", "-inf", "1,5", "0x10", "1.2.3", "--1"]
ODD_DECIMALS = [" 12 ", "1e3", "-0", "0.000", "+7", "1E-6"]


def metric_set() -> list[MetricDefinition]:
    """One metric of each aggregation type, with filters and compound group keys."""
    return [
        metric_definition(
            "Calls", "count", group_keys=[["region"]], event_types=["api_call", "tokens"]
        ),
        metric_definition("Calls all", "count"),
        metric_definition(
            "Tokens",
            "sum",
            key="value",
            group_keys=[["region"], ["region", "model"]],
            not_event_types=["page_view"],
        ),
        metric_definition(
            "Tokens known models",
            "sum",
            key="value",
            extra_filters=[PropertyFilter(name="model", in_values=("gpt", "claude"))],
        ),
        metric_definition("Peak", "max", key="value", group_keys=[["model"]]),
        metric_definition(
            "Users",
            "unique",
            key="user",
            group_keys=[["region"]],
            extra_filters=[PropertyFilter(name="model", not_in_values=("llama",))],
        ),
        metric_definition("Gauge", "latest", key="value", group_keys=[["model"], ["region"]]),
        metric_definition("Gauge all", "latest", key="value", event_types=["tokens"]),
    ]


decimal_text = st.builds(
    lambda digits, places: str(Decimal(digits).scaleb(-places)),
    st.integers(-(10**9), 10**12),
    st.integers(0, 6),
)
value_strategy = st.one_of(
    decimal_text.map(lambda v: ("string", v)),
    decimal_text.map(lambda v: ("number", v)),
    st.sampled_from(NOT_DECIMALS).map(lambda v: ("string", v)),
    st.sampled_from(ODD_DECIMALS).map(lambda v: ("string", v)),
    st.sampled_from(["1e3", "-0", "0.10"]).map(lambda v: ("number", v)),
)
# BASE is 2026-03-11T12:00Z: hour 12 is a day boundary, hour 492 is 2026-04-01T00:00Z
hot_hours = [0, 1, 11, 12, 24 * 15, 491, 492, 493, 24 * 29 + 23, 24 * 30 - 1, 24 * 30]
moment_strategy = st.builds(
    lambda hour, second, micro: BASE + timedelta(hours=hour, seconds=second, microseconds=micro),
    st.one_of(st.integers(0, 24 * 30), st.sampled_from(hot_hours)),
    st.one_of(st.just(0), st.sampled_from([1, 1799, 1800, 3599]), st.integers(0, 3599)),
    st.one_of(st.just(0), st.integers(0, 999_999)),
)


@st.composite
def wire_event(draw: Any, index: int) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, values in (("region", REGIONS), ("model", MODELS), ("user", USERS)):
        if draw(st.integers(0, 5)) > 0:
            properties[name] = draw(st.sampled_from(values))
    if draw(st.integers(0, 6)) > 0:
        kind, text = draw(value_strategy)
        properties["value"] = number(text) if kind == "number" else text
    moment = min(draw(moment_strategy), NOW + timedelta(minutes=5))
    return event(
        f"{draw(st.sampled_from('aAbB'))}{index:03d}",
        customer=draw(st.sampled_from(["@c1", "alias-1", "@c2", "ghost"])),
        event_type=draw(st.sampled_from(EVENT_TYPES)),
        timestamp=moment,
        properties=properties,
    )


@st.composite
def event_stream(draw: Any) -> list[list[dict[str, Any]]]:
    """Batches of wire events, some of them re-sending earlier transaction ids."""
    count = draw(st.integers(1, 70))
    events = [draw(wire_event(i)) for i in range(count)]
    resends = draw(st.lists(st.integers(0, count - 1), max_size=10))
    for position in resends:
        copy = dict(draw(wire_event(position)))
        copy["transaction_id"] = events[position]["transaction_id"]
        events.insert(draw(st.integers(position + 1, len(events))), copy)
    batches, start = [], 0
    while start < len(events):
        size = draw(st.integers(1, 100))
        batches.append(events[start : start + size])
        start += size
    return batches


def window_strategy() -> Any:
    return st.tuples(st.integers(-3600 * 24, 3600 * 24 * 31), st.integers(0, 3600 * 24 * 31)).map(
        lambda t: (BASE + timedelta(seconds=t[0]), BASE + timedelta(seconds=t[0] + t[1]))
    )


MARCH, APRIL, MAY = (datetime(2026, m, 1, tzinfo=UTC) for m in (3, 4, 5))
ANCHORS = [MARCH, APRIL, MAY, datetime(2026, 3, 12, tzinfo=UTC), NOW, BASE]


def boundary_moment() -> Any:
    """A month, day or hour boundary near the events, or a little off one."""
    return st.builds(
        lambda anchor, hours, micros: anchor + timedelta(hours=hours, microseconds=micros),
        st.sampled_from(ANCHORS),
        st.sampled_from([0, 0, 1, -1, 23, -23, 24, -24, 24 * 3 + 5]),
        st.sampled_from([0, 0, 0, 1, -1, 1_800_000_000, -1_234_567]),
    )


def boundary_window() -> Any:
    """Windows whose edges sit on (or next to) month, day and hour boundaries."""
    return st.tuples(boundary_moment(), boundary_moment()).map(lambda t: (min(t), max(t)))


@dataclass
class World:
    org_id: str
    key: str
    metrics: list[MetricDefinition]
    customers: dict[str, str]


async def new_world(env: Env) -> World:
    org_id, key = await env.new_org(unique_name("rollups"))
    metrics = [await add_metric(env, m, org_id) for m in metric_set()]
    c1 = await add_customer(env, "One", ["alias-1"], org_id)
    c2 = await add_customer(env, "Two", [], org_id)
    return World(org_id, key, metrics, {"@c1": c1, "alias-1": c1, "@c2": c2})


async def send(env: Env, world: World, batches: list[list[dict[str, Any]]]) -> list[UsageEvent]:
    """Ingest every batch; check each report; return the events that were stored."""
    stored: dict[str, UsageEvent] = {}
    for batch in batches:
        wire = []
        for raw in batch:
            ref = raw["customer_id"]
            wire.append(
                {
                    **raw,
                    "customer_id": world.customers.get(ref, ref) if ref.startswith("@") else ref,
                }
            )
        response = await env.client.post(
            "/v1/ingest",
            content=dumps_numbers(wire),
            headers={**auth(world.key), "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        report = response.json()
        fresh = []
        duplicates = []
        for raw in wire:
            tx = raw["transaction_id"]
            if tx in stored:
                duplicates.append(tx)
            else:
                stored[tx] = to_usage(raw)
                fresh.append(tx)
        assert report["accepted"] == len(fresh), report
        assert report["duplicates"] == duplicates, report
        assert report["rejected"] == [], report
    return list(stored.values())


def events_of(events: list[UsageEvent], refs: set[str]) -> list[UsageEvent]:
    return [e for e in events if e.customer_id in refs]


def merged(
    a: dict[str, dict[GroupValues, RollupPartial]], b: dict[str, dict[GroupValues, RollupPartial]]
) -> dict[str, dict[GroupValues, RollupPartial]]:
    out: dict[str, dict[GroupValues, RollupPartial]] = {}
    for metric_id in set(a) | set(b):
        groups = dict(a.get(metric_id, {}))
        for group, partial in b.get(metric_id, {}).items():
            groups[group] = partial if group not in groups else groups[group].merge(partial)
        out[metric_id] = groups
    return out


async def check_window(
    env: Env,
    world: World,
    customer_id: str,
    mine: list[UsageEvent],
    start: datetime,
    end: datetime,
) -> dict[str, dict[GroupValues, RollupPartial]]:
    got = await window(env, customer_id, world.metrics, start, end, world.org_id)
    want = recompute(mine, world.metrics, start, end)
    assert_same_usage(world.metrics, got, want, f"window [{iso(start)}, {iso(end)})")
    return got


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # each example costs a real database round: report the first failure, do not shrink it
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    batches=event_stream(),
    windows=st.lists(window_strategy(), min_size=2, max_size=4),
    boundary_windows=st.lists(boundary_window(), min_size=2, max_size=4),
    cuts=st.lists(st.integers(0, 3600 * 24 * 31 * 10**6), min_size=3, max_size=3, unique=True),
    series_window=st.one_of(window_strategy(), boundary_window()),
)
async def test_rollups_equal_recomputation_from_raw_events(
    env: Env,
    batches: list[list[dict[str, Any]]],
    windows: list[tuple[datetime, datetime]],
    boundary_windows: list[tuple[datetime, datetime]],
    cuts: list[int],
    series_window: tuple[datetime, datetime],
) -> None:
    world = await new_world(env)
    stored = await send(env, world, batches)
    # an alias created afterwards claims the events of the unknown customer
    c3 = await add_customer(env, "Three", ["ghost"], world.org_id)
    owners = {
        world.customers["@c1"]: {world.customers["@c1"], "alias-1"},
        world.customers["@c2"]: {world.customers["@c2"]},
        c3: {"ghost"},
    }
    a, b, c = (BASE - timedelta(hours=1) + timedelta(microseconds=x) for x in sorted(cuts))
    everything = (NOW - timedelta(days=40), NOW + timedelta(hours=1))
    aligned = (BASE + timedelta(hours=3), NOW - timedelta(hours=2))
    months = [(MARCH, APRIL), (APRIL, MAY), (MARCH, MAY), (BASE, APRIL), (APRIL, NOW)]
    all_windows = [everything, aligned, *months, *windows, *boundary_windows]
    for customer_id, refs in owners.items():
        mine = events_of(stored, refs)
        for start, end in all_windows:
            await check_window(env, world, customer_id, mine, start, end)
        whole = await check_window(env, world, customer_id, mine, a, c)
        left = await check_window(env, world, customer_id, mine, a, b)
        right = await check_window(env, world, customer_id, mine, b, c)
        assert comparable(world.metrics, merged(left, right)) == comparable(world.metrics, whole)
    # every customer × window at once: one result per request, in order
    requests = [(customer_id, s, e) for customer_id in owners for s, e in all_windows]
    async with env.read() as conn:
        found = await window_partials_many(conn, world.org_id, requests, world.metrics)
    assert len(found) == len(requests)
    for (customer_id, start, end), got in zip(requests, found, strict=True):
        want = recompute(events_of(stored, owners[customer_id]), world.metrics, start, end)
        for partials in got.values():
            assert [g for g, _ in partials] == sorted(g for g, _ in partials)
        as_dicts = {metric_id: dict(partials) for metric_id, partials in got.items()}
        context = f"batched window [{iso(start)}, {iso(end)})"
        assert comparable(world.metrics, as_dicts) == comparable(world.metrics, want), context
    c1 = world.customers["@c1"]
    await check_series(env, world, c1, events_of(stored, owners[c1]), *series_window)


def floor_moment(moment: datetime, window_name: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if window_name == "hour" else hour.replace(hour=0)


def series_reference(
    events: list[UsageEvent],
    metric: MetricDefinition,
    start: datetime,
    end: datetime,
    window_name: str,
    keys: tuple[str, ...],
) -> list[tuple[datetime, GroupValues, Decimal]]:
    """Per bucket holding events of ``[start, end)``: ``billing.metering`` on those events."""
    buckets: dict[datetime, list[UsageEvent]] = {}
    for e in events:
        if start <= e.timestamp < end:
            buckets.setdefault(floor_moment(e.timestamp, window_name), []).append(e)
    rows = []
    for bucket, inside in sorted(buckets.items()):
        partials = recompute(inside, [metric], start, end)[metric.id]
        for group, value in sorted(aggregate(metric, partials.items(), keys).items()):
            rows.append((bucket, group, value))
    return rows


async def check_series(
    env: Env,
    world: World,
    customer_id: str,
    mine: list[UsageEvent],
    start: datetime,
    end: datetime,
) -> None:
    for metric in world.metrics:
        choices: list[tuple[str, ...] | None] = [None, ()]
        for compound in metric.group_keys:
            choices += [compound, compound[:1], compound[::-1]]
        for window_name in ("hour", "day"):
            for keys in choices:
                async with env.read() as conn:
                    got = await usage_series(
                        conn, world.org_id, customer_id, metric, start, end, window_name, keys
                    )
                want = series_reference(mine, metric, start, end, window_name, tuple(keys or ()))
                context = (metric.name, window_name, keys, iso(start), iso(end))
                assert got == want, context


async def test_usage_series_rejects_unknown_windows_and_group_keys(env: Env) -> None:
    metric = await add_metric(
        env, metric_definition("Tokens", "sum", key="value", group_keys=[["region", "model"]])
    )
    customer = await add_customer(env, "Series", ["series"])
    async with env.read() as conn:
        with pytest.raises(ValidationError) as raised:
            await usage_series(conn, env.org_id, customer, metric, BASE, NOW, "week", None)
        assert raised.value.field == "window"
        with pytest.raises(ValidationError) as raised:
            await usage_series(conn, env.org_id, customer, metric, BASE, NOW, "day", ["user"])
        assert raised.value.field == "group_key"
        assert await usage_series(conn, env.org_id, customer, metric, NOW, BASE, "day", []) == []


async def test_window_partials_many_issues_a_constant_number_of_statements(env: Env) -> None:
    """A page of customers × open periods costs the same statements as one window."""
    world = await new_world(env)
    refs = ["@c1", "@c2", "alias-1"]
    batch = [
        event(
            f"s{i:03d}",
            customer=refs[i % 3],
            event_type=EVENT_TYPES[i % 2],
            timestamp=APRIL + timedelta(hours=i * 7 - 240, minutes=i * 13 % 60),
            properties={
                "region": REGIONS[i % 5],
                "model": MODELS[i % 3],
                "user": USERS[i % 4],
                "value": str(i * 3 % 17),
            },
        )
        for i in range(60)
    ]
    stored = await send(env, world, [batch])
    customers = [world.customers["@c1"], world.customers["@c2"]]
    owners = {customers[0]: {customers[0], "alias-1"}, customers[1]: {customers[1]}}
    requests = [
        (
            customers[i % 2],
            MARCH + timedelta(days=i, hours=i % 5, minutes=7 * i + 1),
            APRIL + timedelta(days=i % 9, hours=3, seconds=i + 1),
        )
        for i in range(20)
    ]

    async def statements_of(chosen: list[tuple[str, datetime, datetime]]) -> tuple[int, list]:
        seen: list[str] = []

        def count(*args: Any) -> None:
            if args[2] != "BEGIN":  # SQLite's deferred transaction, not a query
                seen.append(args[2])

        async with env.read() as conn:
            engine = conn.sync_engine
            sa_event.listen(engine, "before_cursor_execute", count)
            try:
                found = await window_partials_many(conn, world.org_id, chosen, world.metrics)
            finally:
                sa_event.remove(engine, "before_cursor_execute", count)
        return len(seen), found

    one, _ = await statements_of(requests[:1])
    twenty, found = await statements_of(requests)
    # rollups, latest values, distinct values, raw events of the partial hours
    assert one == twenty == 4
    for (customer_id, start, end), got in zip(requests, found, strict=True):
        want = recompute(events_of(stored, owners[customer_id]), world.metrics, start, end)
        as_dicts = {metric_id: dict(partials) for metric_id, partials in got.items()}
        assert comparable(world.metrics, as_dicts) == comparable(world.metrics, want)


async def test_sums_stay_exact_beyond_28_significant_digits(env: Env) -> None:
    """SPEC §0: arithmetic on quantities is exact, whatever the number of digits."""
    metric = await add_metric(env, metric_definition("Precise", "sum", key="value"))
    customer = await add_customer(env, "Precise", ["precise"])
    values = ["0.1000000000000000000000000001", "100", "100", "0.0000000000000000000000000001"]
    stamps = [
        NOW - timedelta(hours=3),
        NOW - timedelta(hours=3),
        NOW - timedelta(hours=2, minutes=30),
        NOW - timedelta(minutes=10),
    ]
    for i, (value, stamp) in enumerate(zip(values, stamps, strict=True)):
        response = await env.ingest(
            [event(f"p{i}", customer="precise", timestamp=stamp, properties={"value": value})]
        )
        assert response.json()["accepted"] == 1
    exact = Decimal("200.1000000000000000000000000002")
    for start in (NOW - timedelta(hours=4), NOW - timedelta(hours=3, minutes=1)):
        found = await window(env, customer, [metric], start, NOW)
        assert found[metric.id][()].sum == exact
