"""Nothing crosses tenants at the ingest layer: keys, dedupe, customers, search, rollups."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from notifications.queue import enqueue_backfill
from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    event,
    metric_definition,
    quantity_total,
    search,
    window,
)

WHOLE = (NOW - timedelta(days=35), NOW + timedelta(hours=1))


async def two_tenants(env: Env) -> tuple[str, str, str, str, list, list]:
    org_b, key_b = await env.new_org("Tenant B")
    metric_a = await add_metric(env, metric_definition("Tokens", "sum", key="tokens"))
    metric_b = await add_metric(env, metric_definition("Tokens", "sum", key="tokens"), org_b)
    cust_a = await add_customer(env, "A customer", ["acme-user"])
    cust_b = await add_customer(env, "B customer", ["acme-user"], org_id=org_b)
    return org_b, key_b, cust_a, cust_b, [metric_a], [metric_b]


async def test_events_sent_with_org_b_key_never_reach_org_a(env: Env) -> None:
    org_b, key_b, cust_a, cust_b, metrics_a, metrics_b = await two_tenants(env)
    report = (
        await env.ingest(
            [
                event("b-only", customer="acme-user", properties={"tokens": "5"}),
                event("b-by-a-id", customer=cust_a, properties={"tokens": "7"}),
            ],
            key=key_b,
        )
    ).json()
    assert report["accepted"] == 2
    assert [(w["index"], w["code"]) for w in report["warnings"]] == [(1, "unknown_customer")], (
        "org A's customer id means nothing in org B"
    )
    assert await search(env, ["b-only", "b-by-a-id"]) == {}
    assert set(await search(env, ["b-only", "b-by-a-id"], org_id=org_b)) == {"b-only", "b-by-a-id"}
    a_total = quantity_total((await window(env, cust_a, metrics_a, *WHOLE))[metrics_a[0].id])
    assert a_total == (0, Decimal(0))
    b_total = quantity_total(
        (await window(env, cust_b, metrics_b, *WHOLE, org_id=org_b))[metrics_b[0].id]
    )
    assert b_total == (1, Decimal(5))
    # org A's metric queried for org B's customer through org A finds nothing either
    assert (await window(env, cust_b, metrics_a, *WHOLE))[metrics_a[0].id] == {}


async def test_same_transaction_id_is_stored_in_both_organizations(env: Env) -> None:
    org_b, key_b, cust_a, cust_b, metrics_a, _metrics_b = await two_tenants(env)
    ra = (
        await env.ingest([event("shared-tx", customer="acme-user", properties={"tokens": "1"})])
    ).json()
    rb = (
        await env.ingest(
            [event("shared-tx", customer="acme-user", properties={"tokens": "2"})], key=key_b
        )
    ).json()
    assert (ra["accepted"], ra["duplicates"]) == (1, [])
    assert (rb["accepted"], rb["duplicates"]) == (1, [])
    in_a = (await search(env, ["shared-tx"]))["shared-tx"]
    in_b = (await search(env, ["shared-tx"], org_id=org_b))["shared-tx"]
    assert (in_a.customer_id, in_a.properties) == (cust_a, {"tokens": "1"})
    assert (in_b.customer_id, in_b.properties) == (cust_b, {"tokens": "2"})
    assert not in_a.is_duplicate and not in_b.is_duplicate
    again = (await env.ingest([event("shared-tx", customer="acme-user")], key=key_b)).json()
    assert again["duplicates"] == ["shared-tx"]
    assert not (await search(env, ["shared-tx"]))["shared-tx"].is_duplicate
    assert quantity_total((await window(env, cust_a, metrics_a, *WHOLE))[metrics_a[0].id]) == (
        1,
        Decimal(1),
    )


async def test_alias_claim_and_backfill_stay_inside_their_organization(env: Env) -> None:
    org_b, key_b = await env.new_org("Tenant B")
    await env.ingest(
        [event(f"o-{i}", customer="orphan", properties={"tokens": "1"}) for i in range(3)]
    )
    await env.ingest(
        [event(f"o-{i}", customer="orphan", properties={"tokens": "10"}) for i in range(4)],
        key=key_b,
    )
    metric_b = await add_metric(env, metric_definition("Tokens", "sum", key="tokens"), org_b)
    cust_b = await add_customer(env, "B claimer", ["orphan"], org_id=org_b)
    await enqueue_backfill(env.redis, metric_b.id)
    await env.run_jobs()
    b_total = quantity_total(
        (await window(env, cust_b, [metric_b], *WHOLE, org_id=org_b))[metric_b.id]
    )
    assert b_total == (4, Decimal(40))
    assert all(f.customer_id is None for f in (await search(env, ["o-0", "o-1", "o-2"])).values())
