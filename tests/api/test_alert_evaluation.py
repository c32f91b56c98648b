"""Alert evaluation by the workers (SPEC §7): after every ingest, bursts collapsed, one
notification per transition, reset, evaluate_on_create. Tokens cost $0.01 each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from notifications.queue import start_alert_evaluation
from tests.api.support import (
    code_of,
    contract,
    customer,
    data,
    llm,
    metric,
    product,
    rate,
    rate_card,
    send,
    shop,
)
from tests.api.worker_support import messages
from tests.conftest import Env
from workers.deliver import outbox_sweeper
from workers.worker import build_worker

CREATE_ALERT = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
RESET = """
mutation($alert: ID!, $customer: ID!) { resetAlert(alertId: $alert, customerId: $customer) {
  id } }"""
STATES = "query($id: ID!) { customer(id: $id) { alerts { id statuses { state group } } } }"


async def spend_alert(env: Env, customer_id: str | None, threshold: str, **fields: Any) -> str:
    value = {
        "name": "Budget",
        "alertType": "SPEND_THRESHOLD_REACHED",
        "threshold": threshold,
        **({"customerId": customer_id} if customer_id else {}),
        **fields,
    }
    return str((await data(env, CREATE_ALERT, input=value))["createAlert"]["id"])


async def states(env: Env, customer_id: str, alert_id: str) -> list[str]:
    found = await data(env, STATES, id=customer_id)
    (alert,) = [a for a in found["customer"]["alerts"] if a["id"] == alert_id]
    return [s["state"] for s in alert["statuses"]]


async def test_a_burst_of_ingests_is_one_job_and_one_notification(env: Env) -> None:
    acme = await shop(env)
    alert_id = await spend_alert(env, acme.customer_id, "1.00")
    await env.run_jobs()
    for n in range(5):
        await send(env, llm(f"t{n}", "acme", 30))
    assert len(await env.redis.queued_jobs()) == 1  # five ingests, one queued evaluation
    await env.run_jobs()
    assert await states(env, acme.customer_id, alert_id) == ["IN_ALARM"]
    (triggered,) = await messages(env, "alert.triggered")
    assert triggered["data"]["alert_id"] == alert_id
    assert triggered["data"]["value"] == "1.50"
    await send(env, llm("more", "acme", 30))
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 1  # no transition, no message


async def test_a_change_while_an_evaluation_runs_gets_one_more_run(env: Env) -> None:
    acme = await shop(env)
    await spend_alert(env, acme.customer_id, "1.00")
    await env.run_jobs()
    await send(env, llm("a", "acme", 10))
    # the queued job starts (it bumps the generation first), then a change lands
    await start_alert_evaluation(env.redis, env.org_id, acme.customer_id)
    await send(env, llm("b", "acme", 200))
    assert len(await env.redis.queued_jobs()) == 2
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 1


async def test_reset_notifies_again_and_a_new_period_resolves(env: Env) -> None:
    acme = await shop(env)
    alert_id = await spend_alert(env, acme.customer_id, "1.00")
    await send(env, llm("a", "acme", 150))
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 1
    await data(env, RESET, alert=alert_id, customer=acme.customer_id)
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 2
    assert await code_of(
        env, RESET, key=env.read_key, alert=alert_id, customer=acme.customer_id
    ) == ("FORBIDDEN")
    env.clock.set(env.clock().replace(month=5, day=1, hour=0, minute=1))
    await env.run_jobs()
    (resolved,) = await messages(env, "alert.resolved")
    assert resolved["data"]["state"] == "ok"
    assert await states(env, acme.customer_id, alert_id) == ["OK"]


async def test_evaluate_on_create_false_latches_a_customer_already_over(env: Env) -> None:
    acme = await shop(env)
    await send(env, llm("a", "acme", 150))
    alert_id = await spend_alert(env, acme.customer_id, "1.00", evaluateOnCreate=False)
    await env.run_jobs()
    assert await states(env, acme.customer_id, alert_id) == ["OK"]
    assert await messages(env, "alert.triggered") == []


async def test_an_organization_wide_alert_watches_every_customer(env: Env) -> None:
    acme = await shop(env)
    alert_id = await spend_alert(env, None, "1.00")
    await send(env, llm("a", "acme", 150))
    await env.run_jobs()
    assert await states(env, acme.customer_id, alert_id) == ["IN_ALARM"]
    (triggered,) = await messages(env, "alert.triggered")
    assert triggered["data"]["customer_id"] == acme.customer_id


TOKEN = """mutation($id: ID!) { createCustomerToken(input: {customerId: $id}) { token } }"""
ARCHIVE = "mutation($id: ID!) { archiveAlert(id: $id) { id archivedAt } }"


async def test_a_customer_sets_its_own_budget_alert_and_is_notified(env: Env) -> None:
    acme = await shop(env)
    token = (await data(env, TOKEN, id=acme.customer_id))["createCustomerToken"]["token"]
    value = {
        "name": "My budget",
        "alertType": "SPEND_THRESHOLD_REACHED",
        "threshold": "1.00",
        "customerId": acme.customer_id,
    }
    alert_id = (await data(env, CREATE_ALERT, token, input=value))["createAlert"]["id"]
    await send(env, llm("a", "acme", 150))
    await env.run_jobs()
    (triggered,) = await messages(env, "alert.triggered")
    assert triggered["data"]["alert_id"] == alert_id
    archived = (await data(env, ARCHIVE, token, id=alert_id))["archiveAlert"]
    assert archived["archivedAt"] is not None
    await send(env, llm("b", "acme", 150))
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 1  # archived: evaluated no more


async def test_an_evaluation_redis_lost_is_swept_up_from_the_database(env: Env) -> None:
    acme = await shop(env)
    await spend_alert(env, acme.customer_id, "1.00")
    await env.run_jobs()
    await send(env, llm("a", "acme", 150))
    await env.redis.flushdb()  # the queued evaluation is gone
    await env.run_jobs()
    assert await messages(env, "alert.triggered") == []
    worker = build_worker(env.redis, env.db, env.clock, handle_signals=False, burst=True)
    ctx = {**worker.ctx, "redis": env.redis}
    assert await outbox_sweeper(ctx) == 0  # requested just now: the normal path's turn
    env.clock.set(env.clock() + timedelta(seconds=11))
    assert await outbox_sweeper(ctx) == 1
    await env.run_jobs()
    assert len(await messages(env, "alert.triggered")) == 1
    assert await outbox_sweeper(ctx) == 0  # answered: nothing owed any more


async def test_a_group_appearing_after_creation_notifies_even_without_evaluate_on_create(
    env: Env,
) -> None:
    metric_id = await metric(env)
    product_id = await product(
        env, "Tokens", billableMetricId=metric_id, presentationGroupKey=["model"]
    )
    customer_id = await customer(env, "Acme", ["acme"])
    await contract(env, customer_id, await rate_card(env, rate(product_id, "0.01")))
    alert_id = await spend_alert(env, customer_id, "1.00", evaluateOnCreate=False, groupKey="model")
    await env.run_jobs()  # the creation's evaluation: no spend, no group yet
    await send(env, llm("a", "acme", 150, model="gpt"))
    await env.run_jobs()
    (triggered,) = await messages(env, "alert.triggered")
    assert (triggered["data"]["alert_id"], triggered["data"]["group"]) == (
        alert_id,
        {"model": "gpt"},
    )
