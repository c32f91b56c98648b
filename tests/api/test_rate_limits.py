"""Rate limits per API key and per customer token (a token bucket in Redis, on the app's
clock): 429 with Retry-After on REST and GraphQL, RATE_LIMITED on a subscription."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from redis.asyncio import Redis

from meterline.clock import FixedClock
from models.store.api_keys import create_customer_token, hash_key
from models.store.customers import create_customer
from resolvers.rate_limits import Limit, RateLimiter
from tests.api.live import PROTOCOL, init_payload, serving
from tests.conftest import START, Env

LIMITS = pytest.mark.settings(
    rate_limit_key_per_second=1.0,
    rate_limit_key_burst=3,
    rate_limit_token_per_second=0.5,
    rate_limit_token_burst=2,
    cors_allowed_origins=["https://app.example.com"],
)
CUSTOMER = "query($id: ID!) { customer(id: $id) { id } }"
DRAFTS = "subscription($id: ID!) { draftInvoiceUpdated(customerId: $id) { total } }"


def event(n: int) -> dict[str, object]:
    return {
        "transaction_id": f"tx-{n}",
        "customer_id": "cus_nobody",
        "event_type": "call",
        "timestamp": START.isoformat(),
        "properties": {},
    }


async def graphql(env: Env, key: str, customer_id: str = "cus_x", **headers: str) -> object:
    return await env.client.post(
        "/graphql",
        json={"query": CUSTOMER, "variables": {"id": customer_id}},
        headers={"Authorization": f"Bearer {key}", **headers},
    )


async def customer_and_token(env: Env) -> tuple[str, str]:
    async with env.write() as conn:
        customer_id = await create_customer(conn, env.org_id, "Ada", env.clock())
        token, _ = await create_customer_token(
            conn, env.org_id, customer_id, timedelta(hours=1), env.clock(), actor="test"
        )
    return customer_id, token


@LIMITS
async def test_a_key_past_its_burst_gets_429_with_retry_after_until_the_bucket_refills(
    env: Env,
) -> None:
    for n in range(3):
        assert (await env.ingest([event(n)])).status_code == 200
    refused = await env.ingest([event(3)])
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limited"
    # nothing of the refused batch was stored: the same event is new once allowed
    assert isinstance(env.clock, FixedClock)
    env.clock.set(env.clock() + timedelta(seconds=1))
    accepted = await env.ingest([event(3)])
    assert (accepted.status_code, accepted.json()["accepted"]) == (200, 1)
    assert (await env.ingest([event(4)])).status_code == 429


@LIMITS
async def test_each_key_has_its_own_bucket_shared_by_rest_and_graphql(env: Env) -> None:
    for _ in range(3):
        assert (await graphql(env, env.admin_key)).status_code == 200
    refused = await graphql(env, env.admin_key)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert [e["extensions"]["code"] for e in refused.json()["errors"]] == ["RATE_LIMITED"]
    assert (await graphql(env, env.read_key)).status_code == 200
    assert (await env.ingest([event(1)])).status_code == 200  # the ingest key's own bucket
    _, other_key = await env.new_org("Other")
    assert (await graphql(env, other_key)).status_code == 200


@LIMITS
async def test_a_customer_token_has_the_token_limit_and_a_browser_can_read_the_429(
    env: Env,
) -> None:
    customer_id, token = await customer_and_token(env)
    origin = {"Origin": "https://app.example.com"}
    for _ in range(2):
        assert (await graphql(env, token, customer_id, **origin)).status_code == 200
    refused = await graphql(env, token, customer_id, **origin)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"  # one request back every 2 s
    assert refused.headers["access-control-allow-origin"] == "https://app.example.com"
    assert (await graphql(env, env.read_key, customer_id)).status_code == 200


@LIMITS
async def test_a_subscription_past_the_tokens_limit_is_refused_rate_limited(env: Env) -> None:
    customer_id, token = await customer_and_token(env)
    async with (
        serving(env.app) as host,
        websockets.connect(f"ws://{host}/graphql", subprotocols=[PROTOCOL]) as ws,
    ):
        init = {"type": "connection_init", "payload": init_payload(token)}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "connection_ack"}
        answers = {}
        for n in ("1", "2", "3"):
            query = {"query": DRAFTS, "variables": {"id": customer_id}}
            await ws.send(json.dumps({"type": "subscribe", "id": n, "payload": query}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            answers[answer["id"]] = answer
    assert [answers[n]["type"] for n in ("1", "2")] == ["next", "next"]
    assert answers["3"]["type"] == "error"
    assert [e["extensions"]["code"] for e in answers["3"]["payload"]] == ["RATE_LIMITED"]


@pytest.mark.settings(rate_limit_key_per_second=0, rate_limit_key_burst=1)
async def test_a_limit_of_zero_per_second_is_no_limit(env: Env) -> None:
    for n in range(5):
        assert (await env.ingest([event(n)])).status_code == 200


@LIMITS
async def test_buckets_are_keyed_by_the_credentials_hash_never_the_credential(env: Env) -> None:
    await env.ingest([event(1)])
    keys = [k.decode() for k in await env.redis.keys("meterline:rate:*")]
    assert keys == [f"meterline:rate:key:{hash_key(env.ingest_key)}"]
    stored = await env.redis.hgetall(keys[0])
    assert sorted(stored) == [b"at", b"tokens"]
    assert env.ingest_key.encode() not in b"".join(stored.values())


async def test_when_redis_does_not_answer_requests_pass() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    limiter = RateLimiter(unreachable, FixedClock(START), keys=Limit(1.0, 1), tokens=Limit(1.0, 1))
    try:
        assert [await limiter.wait("ml_live_x") for _ in range(3)] == [None, None, None]
    finally:
        await unreachable.aclose()
