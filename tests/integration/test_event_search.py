"""Event search by transaction ids: what happened to each event and why (SPEC §1)."""

from __future__ import annotations

from datetime import timedelta

from billing.metering import PropertyFilter
from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    event,
    metric_definition,
    search,
)


async def setup(env: Env) -> tuple[str, dict[str, str]]:
    customer = await add_customer(env, "Searcher", ["srch"])
    metrics = {
        "tokens": await add_metric(
            env, metric_definition("Tokens", "sum", key="tokens", event_types=["llm"])
        ),
        "calls": await add_metric(
            env, metric_definition("Calls", "count", not_event_types=["heartbeat"])
        ),
        "gpt": await add_metric(
            env,
            metric_definition(
                "GPT users",
                "unique",
                key="user",
                extra_filters=[PropertyFilter(name="model", in_values=("gpt",))],
            ),
        ),
    }
    return customer, {name: m.id for name, m in metrics.items()}


def verdicts(found: object) -> dict[str, tuple[bool, str | None]]:
    return {m.metric_id: (m.matched, m.reason) for m in found.metrics}  # type: ignore[attr-defined]


async def test_search_reports_customer_matches_and_reasons(env: Env) -> None:
    customer, ids = await setup(env)
    batch = [
        event(
            "s-ok",
            customer="srch",
            event_type="llm",
            properties={"tokens": "12.5", "user": "u1", "model": "gpt"},
        ),
        event(
            "s-notdec",
            customer="srch",
            event_type="llm",
            properties={"tokens": "lots", "user": "u1", "model": "claude"},
        ),
        event("s-missing", customer="srch", event_type="llm", properties={"model": "gpt"}),
        event(
            "s-heartbeat",
            customer=customer,
            event_type="heartbeat",
            properties={"tokens": "1", "user": "u2", "model": "gpt"},
        ),
        event(
            "s-ghost",
            customer="ghost",
            event_type="llm",
            properties={"tokens": "1", "user": "u1", "model": "gpt"},
        ),
    ]
    assert (await env.ingest(batch)).json()["accepted"] == 5
    found = await search(env, [e["transaction_id"] for e in batch] + ["never-sent"])
    assert set(found) == {e["transaction_id"] for e in batch}

    ok = found["s-ok"]
    assert ok.customer_id == customer and ok.customer_ref == "srch"
    assert ok.event_type == "llm"
    assert ok.timestamp == NOW - timedelta(hours=1)
    assert ok.properties == {"tokens": "12.5", "user": "u1", "model": "gpt"}
    assert not ok.is_duplicate
    assert set(ok.matched_metric_ids) == set(ids.values())
    assert all(reason is None for _, reason in verdicts(ok).values())

    notdec = verdicts(found["s-notdec"])
    assert notdec[ids["tokens"]][0] is False
    assert "decimal" in notdec[ids["tokens"]][1] and "lots" in notdec[ids["tokens"]][1]
    assert notdec[ids["calls"]] == (True, None)
    assert notdec[ids["gpt"]][0] is False and "model" in notdec[ids["gpt"]][1]

    missing = verdicts(found["s-missing"])
    assert missing[ids["tokens"]][0] is False and "tokens" in missing[ids["tokens"]][1]
    assert "missing" in missing[ids["tokens"]][1]
    assert missing[ids["gpt"]][0] is False and "user" in missing[ids["gpt"]][1]

    heartbeat = found["s-heartbeat"]
    assert heartbeat.customer_id == customer and heartbeat.customer_ref == customer
    hb = verdicts(heartbeat)
    assert hb[ids["calls"]][0] is False and "heartbeat" in hb[ids["calls"]][1]
    assert hb[ids["tokens"]][0] is False and "event_type" in hb[ids["tokens"]][1]
    assert hb[ids["gpt"]] == (True, None)

    ghost = found["s-ghost"]
    assert ghost.customer_id is None and ghost.customer_ref == "ghost"
    assert ghost.matched_metric_ids == []
    assert all(not matched and "customer" in reason for matched, reason in verdicts(ghost).values())


async def test_search_lists_every_live_metric_with_its_name(env: Env) -> None:
    _, ids = await setup(env)
    await env.ingest([event("n-1", customer="srch", event_type="llm")])
    found = (await search(env, ["n-1"]))["n-1"]
    assert {m.metric_id: m.metric_name for m in found.metrics} == {
        ids["tokens"]: "Tokens",
        ids["calls"]: "Calls",
        ids["gpt"]: "GPT users",
    }


async def test_search_shows_duplicates(env: Env) -> None:
    await setup(env)
    await env.ingest([event("d-1", customer="srch"), event("d-1", customer="srch")])
    await env.ingest([event("d-1", customer="srch"), event("d-2", customer="srch")])
    found = await search(env, ["d-1", "d-2"])
    assert found["d-1"].is_duplicate and found["d-1"].duplicate_count == 2
    assert not found["d-2"].is_duplicate and found["d-2"].duplicate_count == 0


async def test_search_follows_a_later_alias_claim(env: Env) -> None:
    _, ids = await setup(env)
    await env.ingest(
        [event("a-1", customer="coming-soon", event_type="llm", properties={"tokens": "3"})]
    )
    before = (await search(env, ["a-1"]))["a-1"]
    assert before.customer_id is None
    claimer = await add_customer(env, "Claimer", ["coming-soon"])
    after = (await search(env, ["a-1"]))["a-1"]
    assert after.customer_id == claimer
    assert set(after.matched_metric_ids) == {ids["tokens"], ids["calls"]}


async def test_search_of_rejected_event_finds_nothing(env: Env) -> None:
    await env.ingest([event("r-1", timestamp="not a timestamp")])
    assert await search(env, ["r-1"]) == {}
    assert await search(env, []) == {}
