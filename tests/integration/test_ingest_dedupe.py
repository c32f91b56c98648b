"""Dedupe per (organization, transaction_id): stored once, counted once, reported (SPEC §1)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from decimal import Decimal

from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    event,
    metric_definition,
    quantity_total,
    search,
    sql_rows,
    sql_value,
    window,
)

WHOLE = (NOW - timedelta(days=35), NOW + timedelta(hours=1))


async def rows_of(env: Env, tx: str, org_id: str | None = None) -> int:
    return int(
        await sql_value(
            env,
            "SELECT COUNT(*) FROM usage_events WHERE org_id = :org AND transaction_id = :tx",
            org=org_id or env.org_id,
            tx=tx,
        )
    )


async def setup_sum(env: Env) -> tuple[str, list]:
    count = await add_metric(env, metric_definition("Calls", "count"))
    total = await add_metric(env, metric_definition("Tokens", "sum", key="tokens"))
    customer = await add_customer(env, "Dedupe Co", aliases=["dd"])
    return customer, [count, total]


async def test_duplicate_within_a_batch_is_stored_once_and_reported(env: Env) -> None:
    customer, metrics = await setup_sum(env)
    batch = [
        event("a", customer="dd", properties={"tokens": "10"}),
        event("b", customer="dd", properties={"tokens": "1"}),
        event("a", customer="dd", properties={"tokens": "999"}),
        event("a", customer="dd", properties={"tokens": "999"}),
    ]
    report = (await env.ingest(batch)).json()
    assert report["accepted"] == 2
    assert report["duplicates"] == ["a", "a"]
    assert report["rejected"] == [] and report["warnings"] == []
    assert await rows_of(env, "a") == 1
    found = await window(env, customer, metrics, *WHOLE)
    assert quantity_total(found[metrics[0].id]) == (2, Decimal(0))
    assert quantity_total(found[metrics[1].id]) == (2, Decimal(11))
    stored = (await search(env, ["a"]))["a"]
    assert stored.properties == {"tokens": "10"}, "the first copy is the one kept"
    assert stored.is_duplicate and stored.duplicate_count == 2


async def test_duplicate_across_batches_is_stored_once_and_reported(env: Env) -> None:
    customer, metrics = await setup_sum(env)
    first = (await env.ingest([event("x", customer="dd", properties={"tokens": "7"})])).json()
    assert first["accepted"] == 1 and first["duplicates"] == []
    assert not (await search(env, ["x"]))["x"].is_duplicate
    second = (
        await env.ingest(
            [
                event("y", customer="dd", properties={"tokens": "1"}),
                event("x", customer="dd", properties={"tokens": "7"}),
            ]
        )
    ).json()
    assert second["accepted"] == 1
    assert second["duplicates"] == ["x"]
    assert await rows_of(env, "x") == 1
    found = await window(env, customer, metrics, *WHOLE)
    assert quantity_total(found[metrics[1].id]) == (2, Decimal(8))
    stored = await search(env, ["x", "y"])
    assert stored["x"].is_duplicate and stored["x"].duplicate_count == 1
    assert not stored["y"].is_duplicate and stored["y"].duplicate_count == 0


async def test_a_retried_request_changes_nothing(env: Env) -> None:
    customer, metrics = await setup_sum(env)
    batch = [event(f"r-{i}", customer="dd", properties={"tokens": str(i)}) for i in range(50)]
    first = (await env.ingest(batch)).json()
    assert first["accepted"] == 50
    before = await window(env, customer, metrics, *WHOLE)
    for attempt in range(1, 4):
        again = (await env.ingest(batch)).json()
        assert again["accepted"] == 0
        assert again["duplicates"] == [f"r-{i}" for i in range(50)]
        assert again["warnings"] == []
        assert (await search(env, ["r-0"]))["r-0"].duplicate_count == attempt
    assert await window(env, customer, metrics, *WHOLE) == before
    assert quantity_total(before[metrics[1].id]) == (50, Decimal(sum(range(50))))


async def test_duplicate_with_a_different_customer_or_timestamp_is_still_a_duplicate(
    env: Env,
) -> None:
    customer, metrics = await setup_sum(env)
    other = await add_customer(env, "Other", aliases=["other"])
    await env.ingest([event("same", customer="dd", properties={"tokens": "3"})])
    report = (
        await env.ingest(
            [
                event(
                    "same",
                    customer="other",
                    timestamp=NOW - timedelta(days=2),
                    properties={"tokens": "100"},
                )
            ]
        )
    ).json()
    assert report["duplicates"] == ["same"] and report["accepted"] == 0
    assert report["warnings"] == []
    assert quantity_total((await window(env, other, metrics, *WHOLE))[metrics[1].id]) == (
        0,
        Decimal(0),
    )
    assert quantity_total((await window(env, customer, metrics, *WHOLE))[metrics[1].id]) == (
        1,
        Decimal(3),
    )


async def test_duplicate_of_an_unknown_customer_event_is_not_warned_again(env: Env) -> None:
    await env.ingest([event("u", customer="nobody")])
    report = (await env.ingest([event("u", customer="nobody")])).json()
    assert report == {"accepted": 0, "duplicates": ["u"], "rejected": [], "warnings": []}


async def test_twenty_concurrent_clients_resending_overlapping_batches(env: Env) -> None:
    customer, metrics = await setup_sum(env)
    pool = [f"c-{i:03d}" for i in range(300)]
    value = {tx: Decimal(int(tx[2:]) % 17) + Decimal("0.25") for tx in pool}
    rng = random.Random(20260410)

    def wire(tx: str) -> dict:
        stamp = NOW - timedelta(hours=int(tx[2:]) % 48, minutes=int(tx[2:]) % 60)
        return event(tx, customer="dd", timestamp=stamp, properties={"tokens": str(value[tx])})

    async def client(number: int) -> list[dict]:
        reports = []
        for _ in range(4):
            start = rng.randrange(0, len(pool) - 60)
            chosen = pool[start : start + rng.randint(20, 60)]
            batch = [wire(tx) for tx in chosen]
            batch += [wire(tx) for tx in rng.sample(chosen, 5)]  # in-batch repeats too
            rng.shuffle(batch)
            response = await env.ingest(batch)
            assert response.status_code == 200, response.text
            reports.append(response.json())
        return reports

    all_reports = [r for rs in await asyncio.gather(*(client(n) for n in range(20))) for r in rs]
    sent = {tx for r in all_reports for tx in r["duplicates"]}
    accepted_total = sum(r["accepted"] for r in all_reports)
    distinct_rows = int(
        await sql_value(env, "SELECT COUNT(*) FROM usage_events WHERE org_id = :o", o=env.org_id)
    )
    distinct_tx = int(
        await sql_value(
            env,
            "SELECT COUNT(DISTINCT transaction_id) FROM usage_events WHERE org_id = :o",
            o=env.org_id,
        )
    )
    assert distinct_rows == distinct_tx, "a transaction id was stored twice"
    assert accepted_total == distinct_rows, "accepted counts must add up to stored rows"
    stored = [
        r[0]
        for r in await sql_rows(
            env, "SELECT transaction_id FROM usage_events WHERE org_id = :o", o=env.org_id
        )
    ]
    assert sent <= set(stored)
    found = await window(env, customer, metrics, *WHOLE)
    expected_sum = sum((value[tx] for tx in stored), Decimal(0))
    assert quantity_total(found[metrics[0].id]) == (len(stored), Decimal(0))
    assert quantity_total(found[metrics[1].id]) == (len(stored), expected_sum)
    duplicates_reported = sum(len(r["duplicates"]) for r in all_reports)
    duplicates_counted = int(
        await sql_value(
            env,
            "SELECT COALESCE(SUM(duplicate_count), 0) FROM event_dedupe WHERE org_id = :o",
            o=env.org_id,
        )
    )
    assert duplicates_counted == duplicates_reported


async def test_concurrent_identical_requests_store_each_event_once(env: Env) -> None:
    customer, metrics = await setup_sum(env)
    batch = [event(f"s-{i}", customer="dd", properties={"tokens": "1.5"}) for i in range(100)]
    responses = await asyncio.gather(*(env.ingest(batch) for _ in range(20)))
    reports = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert sum(r["accepted"] for r in reports) == 100
    for report in reports:
        assert report["accepted"] + len(report["duplicates"]) == 100
    found = await window(env, customer, metrics, *WHOLE)
    assert quantity_total(found[metrics[1].id]) == (100, Decimal("150.0"))


async def test_concurrent_mixed_multiplicities_do_not_deadlock(env: Env) -> None:
    """Batches repeating the same stored ids a different number of times, in parallel."""
    customer, metrics = await setup_sum(env)
    ids = [f"m-{i}" for i in range(12)]
    first = await env.ingest([event(tx, customer="dd", properties={"tokens": "1"}) for tx in ids])
    assert first.json()["accepted"] == 12

    def batch(shift: int) -> list[dict]:
        out = []
        for position, tx in enumerate(ids):
            times = 1 + (position + shift) % 3
            out += [event(tx, customer="dd", properties={"tokens": "1"})] * times
        return out

    responses = await asyncio.gather(*(env.ingest(batch(s)) for s in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert all(r.json()["accepted"] == 0 for r in responses)
    found = await window(env, customer, metrics, *WHOLE)
    assert quantity_total(found[metrics[1].id]) == (12, Decimal(12))
