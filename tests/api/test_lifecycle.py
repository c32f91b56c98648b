"""Lifecycle notifications (SPEC §8): system events in the transaction of their cause,
time-based ones and offset rules fired once by the scheduler, even with two schedulers
running at once; contract edits reschedule what is pending."""

from __future__ import annotations

import asyncio

from tests.api.support import data, edit, shop
from tests.api.worker_support import CREATE_RULE, at, messages
from tests.conftest import Env
from workers.lifecycle import lifecycle_scheduler
from workers.worker import build_worker

CREDIT = {
    "name": "May credit",
    "amount": "5.00",
    "startingAt": "2026-05-01T00:00:00Z",
    "endingBefore": "2026-06-01T00:00:00Z",
}


async def test_mutations_write_their_events_in_the_same_transaction(env: Env) -> None:
    acme = await shop(env)
    (created,) = await messages(env, "customer.created")
    assert created["data"]["customer_id"] == acme.customer_id
    (contract,) = await messages(env, "contract.created")
    assert contract["data"]["contract_id"] == acme.contract_id
    await edit(env, acme.contract_id, addCredits=[CREDIT])
    (edited,) = await messages(env, "contract.edited")
    assert edited["data"]["contract_id"] == acme.contract_id


async def test_two_schedulers_fire_each_occurrence_once(env: Env) -> None:
    acme = await shop(env, credits=[CREDIT])
    env.clock.set(at("2026-05-01T00:00:30Z"))
    worker = build_worker(env.redis, env.db, env.clock, handle_signals=False, burst=True)
    ctx = {**worker.ctx, "redis": env.redis}
    fired = await asyncio.gather(lifecycle_scheduler(ctx), lifecycle_scheduler(ctx))
    await lifecycle_scheduler(ctx)
    assert sum(fired) == 1
    (started,) = await messages(env, "credit.segment_started")
    assert started["data"]["contract_id"] == acme.contract_id
    assert started["data"]["at"] == "2026-05-01T00:00:00Z"
    # the contract started before it was created: not notified (contract.created says it)
    assert await messages(env, "contract.started") == []


async def test_offset_rules_fire_once_at_trigger_plus_offset(env: Env) -> None:
    acme = await shop(env, credits=[CREDIT])
    rule = (
        await data(
            env,
            CREATE_RULE,
            input={"name": "3 days before", "trigger": "CREDIT_SEGMENT_ENDED", "offset": "-P3D"},
        )
    )["createOffsetRule"]
    env.clock.set(at("2026-05-28T23:59:59Z"))
    await env.run_jobs()
    assert await messages(env, "credit.segment_ended.offset") == []
    env.clock.set(at("2026-05-29T00:00:00Z"))
    await env.run_jobs()
    await env.run_jobs()
    (due,) = await messages(env, "credit.segment_ended.offset")
    assert (due["data"]["offset_id"], due["data"]["offset"]) == (rule["id"], "-P3D")
    assert due["data"]["at"] == "2026-06-01T00:00:00Z"
    assert acme.contract_id == due["data"]["contract_id"]


async def test_editing_the_end_date_reschedules_the_pending_end(env: Env) -> None:
    acme = await shop(env, endingBefore="2026-07-01T00:00:00Z")
    await edit(env, acme.contract_id, updateEndDate={"endingBefore": "2026-06-01T00:00:00Z"})
    env.clock.set(at("2026-06-01T00:00:01Z"))
    await env.run_jobs()
    (ended,) = await messages(env, "contract.ended")
    assert ended["data"]["at"] == "2026-06-01T00:00:00Z"
    env.clock.set(at("2026-07-01T00:00:01Z"))
    await env.run_jobs()
    assert len(await messages(env, "contract.ended")) == 1
    # moving a date that has fired does not fire it again
    await edit(env, acme.contract_id, updateEndDate={"endingBefore": "2026-06-20T00:00:00Z"})
    await env.run_jobs()
    assert len(await messages(env, "contract.ended")) == 1


async def test_a_recurring_credit_starts_a_new_segment_every_period(env: Env) -> None:
    monthly = {
        "name": "Monthly",
        "amount": "9.00",
        "frequency": "MONTHLY",
        "startingAt": "2026-04-01T00:00:00Z",
    }
    acme = await shop(env, recurringCredits=[monthly])
    env.clock.set(at("2026-06-01T00:00:10Z"))
    await env.run_jobs()
    started = await messages(env, "credit.segment_started")
    # April's segment started before the contract was created; May and June are notified
    assert [m["data"]["at"] for m in started] == ["2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"]
    assert {m["data"]["contract_id"] for m in started} == {acme.contract_id}
    ended = await messages(env, "credit.segment_ended")
    assert [m["data"]["at"] for m in ended] == ["2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"]
