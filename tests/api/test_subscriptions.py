"""GraphQL subscriptions over a real websocket (uvicorn, graphql-transport-ws, the gql
client): authenticated in ``connection_init``, authorized like ``customer(id)``, pushed
after the ingest commits (through Redis pub/sub) with freshly read data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from websockets.exceptions import ConnectionClosed

from notifications.pubsub import Topic, channel, publish
from tests.api.live import PROTOCOL, first, init_payload, request, serving, session
from tests.api.support import APRIL, JUNE, auth, code, customer, data, llm, post, shop
from tests.conftest import START, Env

DRAFTS = """subscription($id: ID!) {
  draftInvoiceUpdated(customerId: $id) { total lines { type quantity amount } }
}"""
USAGE = """subscription($id: ID!, $metric: ID!) {
  usageUpdated(customerId: $id) {
    id name draftInvoices { total }
    usage(billableMetricId: $metric, startingAt: "2026-04-01T00:00:00Z",
          endingBefore: "2026-04-11T00:00:00Z") { quantity }
  }
}"""
BALANCES = """subscription($id: ID!) {
  balanceUpdated(customerId: $id) { name amount pendingDraftDeduction remainingAfterDrafts }
}"""
ALERTS = """subscription($id: ID!) {
  alertStateChanged(customerId: $id) { name threshold statuses { state } }
}"""
CREATE_ALERT = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
ARCHIVE_ALERT = "mutation($id: ID!) { archiveAlert(id: $id) { id } }"
MINT = """mutation($input: CreateCustomerTokenInput!) {
  createCustomerToken(input: $input) { token expiresAt }
}"""
PROMO = {"name": "Promo", "amount": "100", "startingAt": APRIL, "endingBefore": JUNE}


@pytest.fixture
async def live(env: Env) -> AsyncIterator[str]:
    async with serving(env.app) as host:
        yield host


async def next_of(stream: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(stream), 10)


async def ingest(host: str, key: str, *events: dict[str, Any]) -> None:
    """POST ``events`` to the served ``/v1/ingest``; every one must be accepted."""
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:
        response = await http.post("/v1/ingest", json=list(events), headers=auth(key))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)


async def mint(env: Env, customer_id: str, ttl_seconds: int = 3600) -> str:
    minted = await data(env, MINT, input={"customerId": customer_id, "ttlSeconds": ttl_seconds})
    return str(minted["createCustomerToken"]["token"])


async def test_a_draft_invoice_follows_the_ingested_usage(env: Env, live: str) -> None:
    world = await shop(env)
    async with session(live, env.admin_key) as opened:
        stream = opened.subscribe(request(DRAFTS, id=world.customer_id))
        (draft,) = (await next_of(stream))["draftInvoiceUpdated"]
        assert (draft["total"], draft["lines"]) == ("0.00", [])
        await ingest(live, env.ingest_key, llm("tx-1", "acme", 1000))
        (draft,) = (await next_of(stream))["draftInvoiceUpdated"]
        assert draft == {
            "total": "10.00",
            "lines": [{"type": "USAGE", "quantity": "1000", "amount": "10.00"}],
        }
        await ingest(live, env.ingest_key, llm("tx-2", "acme", 200), llm("tx-3", "acme", 300))
        (draft,) = (await next_of(stream))["draftInvoiceUpdated"]
        assert draft["total"] == "15.00"
        names = [channel(t, env.org_id, world.customer_id) for t in (Topic.USAGE, Topic.BALANCE)]
        assert [n for _, n in await env.redis.pubsub_numsub(*names)] == [1, 1]
        await stream.aclose()
    async with asyncio.timeout(10):  # the stopped subscription left no channel behind
        while True:
            if not any(n for _, n in await env.redis.pubsub_numsub(*names)):
                break
            await asyncio.sleep(0.05)


async def test_every_field_pushes_on_its_own_changes(env: Env, live: str) -> None:
    """Three subscriptions on one socket: each gets its current value, then usage moves
    the customer and its balances, and an alert notice moves the alerts alone."""
    world = await shop(env, credits=[PROMO])
    async with session(live, env.read_key) as opened:
        usage = opened.subscribe(request(USAGE, id=world.customer_id, metric=world.metric_id))
        balances = opened.subscribe(request(BALANCES, id=world.customer_id))
        alerts = opened.subscribe(request(ALERTS, id=world.customer_id))
        assert (await next_of(usage))["usageUpdated"] == {
            "id": world.customer_id,
            "name": "Acme",
            "draftInvoices": [{"total": "0.00"}],
            "usage": [],
        }
        assert (await next_of(balances))["balanceUpdated"] == [
            {
                "name": "Promo",
                "amount": "100",
                "pendingDraftDeduction": "0",
                "remainingAfterDrafts": "100",
            }
        ]
        assert (await next_of(alerts))["alertStateChanged"] == []

        await ingest(live, env.ingest_key, llm("tx-1", "acme", 1000))
        pushed = (await next_of(usage))["usageUpdated"]
        assert pushed["usage"] == [{"quantity": "1000"}]
        assert pushed["draftInvoices"] == [{"total": "0.00"}]  # the credit draws it all
        (balance,) = (await next_of(balances))["balanceUpdated"]
        assert (balance["pendingDraftDeduction"], balance["remainingAfterDrafts"]) == (
            "10.00",
            "90.00",
        )

        alert = {
            "name": "Budget",
            "alertType": "SPEND_THRESHOLD_REACHED",
            "threshold": "50",
            "customerId": world.customer_id,
        }
        created = await data(env, CREATE_ALERT, input=alert)
        await publish(env.redis, Topic.ALERTS, env.org_id, [world.customer_id])
        (found,) = (await next_of(alerts))["alertStateChanged"]
        assert (found["name"], found["threshold"]) == ("Budget", "50")
        # the alert notice moved nothing else: the next usage and balance pushes are those
        # of the next ingest, with exactly its 500 tokens
        await ingest(live, env.ingest_key, llm("tx-2", "acme", 500))
        assert (await next_of(usage))["usageUpdated"]["usage"] == [{"quantity": "1500"}]
        (balance,) = (await next_of(balances))["balanceUpdated"]
        assert (balance["pendingDraftDeduction"], balance["remainingAfterDrafts"]) == (
            "15.00",
            "85.00",
        )
        # archiving the alert is pushed too: it is gone from the customer's alerts
        await data(env, ARCHIVE_ALERT, id=created["createAlert"]["id"])
        assert (await next_of(alerts))["alertStateChanged"] == []
        for stream in (usage, balances, alerts):
            await stream.aclose()


async def test_an_alert_evaluation_pushes_the_new_state(env: Env, live: str) -> None:
    """The worker that evaluates alerts pushes to ``alertStateChanged`` once it has stored
    the states; an ingest alone moves no alert."""
    world = await shop(env)
    alert = {
        "name": "Budget",
        "alertType": "SPEND_THRESHOLD_REACHED",
        "threshold": "1.00",
        "customerId": world.customer_id,
    }
    await data(env, CREATE_ALERT, input=alert)
    await env.run_jobs()  # evaluated on create: nothing spent yet
    async with session(live, env.read_key) as opened:
        alerts = opened.subscribe(request(ALERTS, id=world.customer_id))
        (found,) = (await next_of(alerts))["alertStateChanged"]
        assert found["statuses"] == [{"state": "OK"}]
        await ingest(live, env.ingest_key, llm("tx-1", "acme", 150))  # $1.50
        await env.run_jobs()
        (found,) = (await next_of(alerts))["alertStateChanged"]
        assert (found["name"], found["statuses"]) == ("Budget", [{"state": "IN_ALARM"}])
        await alerts.aclose()


async def test_a_refusal_is_the_subscriptions_error_not_a_failed_push(env: Env, live: str) -> None:
    """graphql-transport-ws: a subscription refused (here NOT_FOUND) gets one ``error``
    message, as an operation that never started, not a ``next`` carrying errors."""
    subscribe = {
        "type": "subscribe",
        "id": "1",
        "payload": {"query": DRAFTS, "variables": {"id": "cus_doesnotexist"}},
    }
    async with websockets.connect(f"ws://{live}/graphql", subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": init_payload(env.read_key)}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
        await ws.send(json.dumps(subscribe))
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (answer["type"], answer["id"]) == ("error", "1"), answer
    assert [e["extensions"]["code"] for e in answer["payload"]] == ["NOT_FOUND"]


async def test_a_read_key_may_subscribe_and_an_ingest_key_is_forbidden(env: Env, live: str) -> None:
    world = await shop(env)
    found = await first(live, env.read_key, DRAFTS, id=world.customer_id)
    assert found["data"]["draftInvoiceUpdated"][0]["total"] == "0.00"
    refused = await first(live, env.ingest_key, DRAFTS, id=world.customer_id)
    assert refused["data"] is None and code(refused) == "FORBIDDEN"


async def test_a_customer_token_follows_its_own_customer_only(env: Env, live: str) -> None:
    world = await shop(env)
    other = await customer(env, "Other")
    token = await mint(env, world.customer_id)
    own = await first(live, token, DRAFTS, id=world.customer_id)
    assert own["data"]["draftInvoiceUpdated"][0]["total"] == "0.00"
    for query, variables in (
        (DRAFTS, {}),
        (USAGE, {"metric": world.metric_id}),
        (BALANCES, {}),
        (ALERTS, {}),
    ):
        for customer_id in (other, "cus_doesnotexist"):
            body = await first(live, token, query, id=customer_id, **variables)
            assert body["data"] is None and code(body) == "NOT_FOUND", (query, customer_id)
    body = await first(live, env.admin_key, DRAFTS, id="cus_doesnotexist")
    assert code(body) == "NOT_FOUND"


async def test_a_subscription_ends_when_its_token_expires(env: Env, live: str) -> None:
    world = await shop(env)
    token = await mint(env, world.customer_id, ttl_seconds=600)
    async with session(live, token) as opened:
        stream = opened.subscribe(request(DRAFTS, id=world.customer_id))
        assert (await next_of(stream))["draftInvoiceUpdated"][0]["total"] == "0.00"
        env.clock.set(START + timedelta(seconds=600))
        await ingest(live, env.ingest_key, llm("tx-1", "acme", 1000))
        with pytest.raises(TransportQueryError) as ended:
            await next_of(stream)
    assert [e["extensions"]["code"] for e in ended.value.errors or []] == ["UNAUTHENTICATED"]


async def closing_code(host: str, payload: Any, subprotocol: str = PROTOCOL) -> int | None:
    """How the server closes a socket whose ``connection_init`` carries ``payload``
    (None: it acknowledged)."""
    async with websockets.connect(f"ws://{host}/graphql", subprotocols=[subprotocol]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code
    assert answer == {"type": "connection_ack"}
    return None


async def test_connection_init_without_a_valid_credential_is_refused(env: Env, live: str) -> None:
    refused = [
        {},
        {"authorization": "Bearer "},
        {"authorization": "Bearer ml_live_doesnotexist"},
        {"authorization": env.admin_key},  # not a bearer credential
        {"token": env.admin_key},
        {"authorization": ["Bearer", env.admin_key]},
    ]
    for payload in refused:
        assert await closing_code(live, payload) == 4403, payload
    for header in ("authorization", "Authorization"):
        assert await closing_code(live, {header: f"Bearer {env.admin_key}"}) is None
    with pytest.raises(TransportConnectionFailed):  # what the gql client sees of a refusal
        async with session(live, "ml_live_doesnotexist"):
            pass


async def test_nothing_runs_before_connection_init_nor_over_other_protocols(
    env: Env, live: str
) -> None:
    world = await shop(env)
    subscribe = {
        "type": "subscribe",
        "id": "1",
        "payload": {"query": DRAFTS, "variables": {"id": world.customer_id}},
    }
    async with websockets.connect(f"ws://{live}/graphql", subprotocols=[PROTOCOL]) as ws:
        await ws.send(json.dumps(subscribe))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # the legacy graphql-ws protocol (no authentication step) is not spoken
    async with websockets.connect(f"ws://{live}/graphql", subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4406


async def test_a_subscription_over_http_is_refused(env: Env) -> None:
    world = await shop(env)
    response = await post(env, DRAFTS, id=world.customer_id)
    assert response.status_code == 400, response.text
    assert code(response.json()) == "BAD_REQUEST"
    named = DRAFTS.replace("subscription", "subscription Live", 1)
    both = {
        "query": f"query Mine {{ organization {{ name }} }} {named}",
        "variables": {"id": world.customer_id},
    }
    for name, status in (("Mine", 200), ("Live", 400)):
        answer = await env.client.post(
            "/graphql", json={**both, "operationName": name}, headers=auth(env.admin_key)
        )
        assert answer.status_code == status, answer.text
