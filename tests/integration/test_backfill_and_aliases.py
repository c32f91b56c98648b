"""A metric created after events arrived counts them once (back-fill job), and an ingest
alias created after events arrived claims them (SPEC §1, §2, §5 ingest_aliases)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from billing.errors import ConflictError
from models.store.backfill import backfill_metric
from models.store.customers import add_aliases, create_customer
from notifications.queue import enqueue_backfill
from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    comparable,
    event,
    metric_definition,
    quantity_total,
    recompute,
    search,
    sql_value,
    to_usage,
    window,
)

WHOLE = (NOW - timedelta(days=35), NOW + timedelta(hours=1))
ODD = (NOW - timedelta(days=3, minutes=17), NOW - timedelta(minutes=41))


def usage_batch(prefix: str, customer: str, n: int, hours_back: int = 70) -> list[dict]:
    return [
        event(
            f"{prefix}-{i}",
            customer=customer,
            event_type="tokens" if i % 4 else "api_call",
            timestamp=NOW - timedelta(hours=(i * 7) % hours_back, minutes=i % 60),
            properties={
                "tokens": str(Decimal(i) / 4),
                "model": ["gpt", "claude", "llama"][i % 3],
                "user": f"u{i % 5}",
            },
        )
        for i in range(n)
    ]


def late_metrics() -> list:
    return [
        metric_definition("Tokens", "sum", key="tokens", group_keys=[["model"]]),
        metric_definition("Calls", "count", event_types=["api_call"]),
        metric_definition("Users", "unique", key="user", group_keys=[["model"]]),
        metric_definition("Last", "latest", key="tokens"),
        metric_definition("Peak", "max", key="tokens", group_keys=[["model"]]),
    ]


async def assert_rollups_match(env: Env, customer: str, metrics: list, sent: list[dict]) -> None:
    events = [to_usage({**raw, "customer_id": customer}) for raw in sent]
    for start, end in (WHOLE, ODD):
        got = await window(env, customer, metrics, start, end)
        want = recompute(events, metrics, start, end)
        assert comparable(metrics, got) == comparable(metrics, want)


async def test_metric_created_later_backfills_stored_events(env: Env) -> None:
    customer = await add_customer(env, "Early", ["early"])
    sent = usage_batch("e", "early", 80)
    report = (await env.ingest(sent)).json()
    assert report["accepted"] == 80
    assert {w["code"] for w in report["warnings"]} == {"no_matching_metric"}
    metrics = [await add_metric(env, m) for m in late_metrics()]
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    await assert_rollups_match(env, customer, metrics, sent)
    tokens = (await window(env, customer, metrics[:1], *WHOLE))[metrics[0].id]
    assert quantity_total(tokens) == (80, sum((Decimal(i) / 4 for i in range(80)), Decimal(0)))


async def test_backfill_run_again_or_enqueued_again_does_not_double_count(env: Env) -> None:
    customer = await add_customer(env, "Twice", ["twice"])
    sent = usage_batch("t", "twice", 40)
    await env.ingest(sent)
    metrics = [await add_metric(env, m) for m in late_metrics()]
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    before = await window(env, customer, metrics, *WHOLE)
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    for metric in metrics:
        async with env.write() as conn:
            await backfill_metric(conn, metric.id, env.clock())
    assert await window(env, customer, metrics, *WHOLE) == before
    await assert_rollups_match(env, customer, metrics, sent)


async def test_events_after_metric_creation_but_before_backfill_count_once(env: Env) -> None:
    customer = await add_customer(env, "Between", ["between"])
    before = usage_batch("b", "between", 30)
    await env.ingest(before)
    metrics = [await add_metric(env, m) for m in late_metrics()]
    after = usage_batch("a", "between", 30, hours_back=50)
    report = (await env.ingest(after)).json()
    assert report["accepted"] == 30
    assert report["warnings"] == []
    # the new events are rated by ingest already; the old ones wait for the back-fill
    only_after = await window(env, customer, metrics, *WHOLE)
    want_after = recompute(
        [to_usage({**r, "customer_id": customer}) for r in after], metrics, *WHOLE
    )
    assert comparable(metrics, only_after) == comparable(metrics, want_after)
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    await assert_rollups_match(env, customer, metrics, before + after)
    count = quantity_total((await window(env, customer, metrics, *WHOLE))[metrics[1].id])
    expected_calls = sum(1 for e in before + after if e["event_type"] == "api_call")
    assert count[0] == expected_calls


async def test_metric_created_while_ingests_run_counts_every_event_once(env: Env) -> None:
    customer = await add_customer(env, "Racing", ["racing"])
    batches = [usage_batch(f"r{n}", "racing", 40, hours_back=60) for n in range(12)]
    created: list = []

    async def create() -> None:
        created.extend([await add_metric(env, m) for m in late_metrics()])

    jobs = [env.ingest(batch) for batch in batches[:6]]
    jobs += [create()]
    jobs += [env.ingest(batch) for batch in batches[6:]]
    results = await asyncio.gather(*jobs)
    assert all(r.status_code == 200 for r in results if r is not None)
    for metric in created:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    await assert_rollups_match(env, customer, created, [e for b in batches for e in b])


async def test_backfill_leaves_other_organizations_alone(env: Env) -> None:
    other_org, other_key = await env.new_org("Neighbour")
    mine = await add_customer(env, "Mine", ["shared-alias"])
    theirs = await add_customer(env, "Theirs", ["shared-alias"], org_id=other_org)
    await env.ingest(usage_batch("x", "shared-alias", 20))
    await env.ingest(usage_batch("x", "shared-alias", 20), key=other_key)
    metric = await add_metric(env, late_metrics()[0])
    await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    total = quantity_total((await window(env, mine, [metric], *WHOLE))[metric.id])
    assert total[0] == 20
    rollups_of_theirs = await sql_value(
        env, "SELECT COUNT(*) FROM usage_rollups WHERE customer_id = :c", c=theirs
    )
    assert rollups_of_theirs == 0


async def test_events_of_unknown_customer_are_stored_and_only_warned_unknown(env: Env) -> None:
    await add_metric(env, metric_definition("Calls", "count", event_types=["api_call"]))
    report = (
        await env.ingest(
            [
                event("u1", customer="not-yet", event_type="api_call"),
                event("u2", customer="not-yet", event_type="unmatched_type"),
            ]
        )
    ).json()
    assert report["accepted"] == 2
    assert [(w["index"], w["code"]) for w in report["warnings"]] == [
        (0, "unknown_customer"),
        (1, "unknown_customer"),
    ]
    found = await search(env, ["u1", "u2"])
    assert found["u1"].customer_id is None and found["u1"].customer_ref == "not-yet"


async def test_events_matching_no_metric_are_stored_and_warned(env: Env) -> None:
    await add_metric(env, metric_definition("Tokens", "sum", key="tokens", event_types=["tokens"]))
    await add_customer(env, "Known", ["known"])
    report = (
        await env.ingest(
            [
                event("n1", customer="known", event_type="page_view"),
                event("n2", customer="known", event_type="tokens", properties={"tokens": "x"}),
                event("n3", customer="known", event_type="tokens", properties={"tokens": "2"}),
                event("n4", customer="known", event_type="tokens"),
            ]
        )
    ).json()
    assert report["accepted"] == 4
    assert [(w["index"], w["code"]) for w in report["warnings"]] == [
        (0, "no_matching_metric"),
        (1, "no_matching_metric"),
        (3, "no_matching_metric"),
    ]
    assert set(await search(env, ["n1", "n2", "n3", "n4"])) == {"n1", "n2", "n3", "n4"}


async def test_alias_created_later_claims_stored_events(env: Env) -> None:
    metrics = [await add_metric(env, m) for m in late_metrics()]
    sent = usage_batch("c", "future-alias", 40)
    report = (await env.ingest(sent)).json()
    assert [w["code"] for w in report["warnings"]] == ["unknown_customer"] * 40
    customer = await add_customer(env, "Claimer", ["future-alias", "other-alias"])
    await assert_rollups_match(env, customer, metrics, sent)
    found = await search(env, ["c-0"])
    assert found["c-0"].customer_id == customer
    # new events by that alias are now known and rated without warnings
    later = (
        await env.ingest([event("c-new", customer="future-alias", event_type="api_call")])
    ).json()
    assert later["warnings"] == []
    # creating another alias later does not claim (or count) anything twice
    async with env.write() as conn:
        await add_aliases(conn, env.org_id, customer, ["third-alias"])
    await assert_rollups_match(
        env, customer, metrics, [*sent, event("c-new", customer="x", event_type="api_call")]
    )


async def test_alias_added_to_existing_customer_claims_events(env: Env) -> None:
    metric = await add_metric(env, metric_definition("Calls", "count"))
    customer = await add_customer(env, "Existing")
    await env.ingest([event(f"o-{i}", customer="legacy-id") for i in range(5)])
    assert quantity_total((await window(env, customer, [metric], *WHOLE))[metric.id])[0] == 0
    async with env.write() as conn:
        await add_aliases(conn, env.org_id, customer, ["legacy-id"])
    assert quantity_total((await window(env, customer, [metric], *WHOLE))[metric.id])[0] == 5


async def test_claim_before_backfill_counts_once(env: Env) -> None:
    sent = usage_batch("k", "late-alias", 30)
    await env.ingest(sent)
    metrics = [await add_metric(env, m) for m in late_metrics()]
    customer = await add_customer(env, "Late", ["late-alias"])
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    await assert_rollups_match(env, customer, metrics, sent)


async def test_claim_after_backfill_counts_once(env: Env) -> None:
    sent = usage_batch("q", "later-alias", 30)
    await env.ingest(sent)
    metrics = [await add_metric(env, m) for m in late_metrics()]
    for metric in metrics:
        await enqueue_backfill(env.redis, metric.id)
    await env.run_jobs()
    customer = await add_customer(env, "Later", ["later-alias"])
    await assert_rollups_match(env, customer, metrics, sent)
    await env.run_jobs()
    await assert_rollups_match(env, customer, metrics, sent)


async def test_alias_held_by_another_customer_is_a_conflict(env: Env) -> None:
    first = await add_customer(env, "First", ["taken"])
    await env.ingest([event("t-1", customer="taken")])
    customers_before = await sql_value(env, "SELECT COUNT(*) FROM customers")
    with pytest.raises(ConflictError):
        async with env.write() as conn:
            await create_customer(conn, env.org_id, "Second", env.clock(), ingest_aliases=["taken"])
    assert await sql_value(env, "SELECT COUNT(*) FROM customers") == customers_before
    assert (await search(env, ["t-1"]))["t-1"].customer_id == first
    with pytest.raises(ConflictError):
        async with env.write() as conn:
            await create_customer(conn, env.org_id, "Third", env.clock(), ingest_aliases=[first])
    other = await add_customer(env, "Other")
    with pytest.raises(ConflictError):
        async with env.write() as conn:
            await add_aliases(conn, env.org_id, other, ["fresh", "taken"])
    report = (await env.ingest([event("t-2", customer="fresh")])).json()
    assert [w["code"] for w in report["warnings"]] == ["unknown_customer"], (
        "a failed alias change must not leave part of it behind"
    )


async def test_same_alias_in_two_organizations_is_not_a_conflict(env: Env) -> None:
    other_org, _ = await env.new_org("Elsewhere")
    await add_customer(env, "Here", ["same"])
    await add_customer(env, "There", ["same"], org_id=other_org)
