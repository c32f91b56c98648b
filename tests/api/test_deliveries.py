"""Delivering webhooks (SPEC §10) to a real local HTTP receiver (tests/api/receiver.py):
signed with svix, five days of failures disable the endpoint, a worker never sends a
leased attempt twice, the sweeper recovers what Redis lost; batches to several endpoints,
where one failing or slow endpoint holds back no other and a batch lost mid-way is sent
again once its lease runs out. What each kind of failing receiver gets (timeouts, 5xx,
429 with Retry-After, 410, redirects) is in tests/faults/test_receiver_faults.py."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from svix.webhooks import Webhook

from models.store.webhook_deliveries import lease_deliveries
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from notifications.queue import DELIVER_WEBHOOK
from tests.api.receiver import Receiver, receiver_fixture
from tests.api.support import data
from tests.api.worker_support import ctx_of, messages
from tests.conftest import Env
from workers.deliver import deliver_webhook, outbox_sweeper

receiver = receiver_fixture

CREATE = """mutation($url: String!) {
  createWebhookEndpoint(input: {url: $url}) { id secret } }"""
LOG = """{ webhookMessages(first: 50) { nodes { id type deliveries {
  id status attempts endpointId attemptLog { statusCode error } } } } }"""
ENDPOINT = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }"


async def setup(env: Env, receiver: Receiver) -> tuple[str, str]:
    """The real time on the clock (svix checks signature times), an endpoint to the
    receiver, and one message for it: (endpoint id, secret)."""
    env.clock.set(datetime.now(UTC).replace(microsecond=0))
    created = (await data(env, CREATE, url=receiver.url))["createWebhookEndpoint"]
    outbox = Outbox()
    async with env.write() as conn:
        event = WebhookEvent("customer.created", {"customer_id": "c1", "name": "C"}, None)
        await outbox.emit(conn, env.org_id, event, env.clock())
    await outbox.dispatch(env.redis)
    return created["id"], created["secret"]


async def deliveries(env: Env) -> list[dict[str, Any]]:
    nodes = (await data(env, LOG))["webhookMessages"]["nodes"]
    return [d for m in nodes if m["type"] == "customer.created" for d in m["deliveries"]]


async def test_a_delivery_is_signed_and_logged(env: Env, receiver: Receiver) -> None:
    _, secret = await setup(env, receiver)
    await env.run_jobs()
    (body, headers), *rest = receiver.received
    assert rest == []
    Webhook(secret).verify(body, headers)  # raises unless the signature is ours
    sent = json.loads(body)
    assert sent["type"] == "customer.created"
    assert headers["webhook-id"] == sent["id"]
    (delivery,) = await deliveries(env)
    assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 1)
    assert delivery["attemptLog"] == [{"statusCode": 200, "error": None}]


async def test_five_days_of_failures_disable_the_endpoint(env: Env, receiver: Receiver) -> None:
    env.webhooks = replace(env.webhooks, schedule=(timedelta(days=3),) * 7)
    endpoint_id, _ = await setup(env, receiver)
    receiver.script = [500] * 10
    (delivery_id,) = [d["id"] for d in await deliveries(env)]
    ctx = ctx_of(env)
    assert await deliver_webhook(ctx, delivery_id) == "retrying"
    env.clock.set(env.clock() + timedelta(days=4))
    assert await deliver_webhook(ctx, delivery_id) == "retrying"
    assert (await data(env, ENDPOINT, id=endpoint_id))["webhookEndpoint"]["enabled"] is True
    env.clock.set(env.clock() + timedelta(days=4))
    assert await deliver_webhook(ctx, delivery_id) == "failed"
    found = (await data(env, ENDPOINT, id=endpoint_id))["webhookEndpoint"]
    assert found["enabled"] is False
    assert found["disabledReason"].startswith("every attempt failed since")
    assert len(await messages(env, "webhook_endpoint.disabled")) == 1
    (delivery,) = await deliveries(env)  # the attempt that disabled it is counted too
    assert (delivery["status"], delivery["attempts"], len(delivery["attemptLog"])) == (
        "FAILED",
        3,
        3,
    )


async def test_two_workers_never_send_the_same_attempt(env: Env, receiver: Receiver) -> None:
    await setup(env, receiver)
    (delivery_id,) = [d["id"] for d in await deliveries(env)]
    ctx = ctx_of(env)
    outcomes = await asyncio.gather(*(deliver_webhook(ctx, delivery_id) for _ in range(3)))
    assert sorted(outcomes) == ["skipped", "skipped", "succeeded"]
    assert len(receiver.received) == 1


async def test_the_sweeper_recovers_deliveries_redis_lost(env: Env, receiver: Receiver) -> None:
    await setup(env, receiver)
    await env.redis.flushdb()
    await env.run_jobs()
    assert receiver.received == []
    assert await outbox_sweeper(ctx_of(env)) == 1
    await env.run_jobs()
    assert len(receiver.received) == 1
    (delivery,) = await deliveries(env)
    assert delivery["status"] == "SUCCEEDED"


DISABLE = """mutation($id: ID!) {
  updateWebhookEndpoint(id: $id, input: {enabled: false}) { enabled } }"""


async def test_disabling_an_endpoint_stops_its_pending_deliveries(
    env: Env, receiver: Receiver
) -> None:
    endpoint_id, _ = await setup(env, receiver)
    await data(env, DISABLE, id=endpoint_id)
    await env.run_jobs()
    assert receiver.received == []
    (delivery,) = await deliveries(env)
    assert (delivery["status"], delivery["attemptLog"]) == ("FAILED", [])


# --- batches --------------------------------------------------------------------------------


async def endpoints_and_messages(
    env: Env, receiver: Receiver, paths: list[str], count: int
) -> dict[str, str]:
    """At the real time, an endpoint per path of the receiver and ``count`` messages for
    all of them; returns each path's secret."""
    env.clock.set(datetime.now(UTC).replace(microsecond=0))
    secrets = {}
    for path in paths:
        url = receiver.url.removesuffix("/hooks") + path
        secrets[path] = (await data(env, CREATE, url=url))["createWebhookEndpoint"]["secret"]
    outbox = Outbox()
    async with env.write() as conn:
        for n in range(count):
            event = WebhookEvent("customer.created", {"customer_id": f"c{n}", "name": "C"}, None)
            await outbox.emit(conn, env.org_id, event, env.clock())
    await outbox.dispatch(env.redis)
    return secrets


def arrivals(receiver: Receiver, path: str) -> list[tuple[bytes, dict[str, str]]]:
    return receiver.arrivals(path)


async def test_a_batch_to_several_endpoints_arrives_signed_once_each(
    env: Env, receiver: Receiver
) -> None:
    secrets = await endpoints_and_messages(env, receiver, ["/a", "/b", "/c"], 12)
    (first,) = [d["id"] for d in (await deliveries(env))[:1]]
    assert await deliver_webhook(ctx_of(env), first) == "succeeded"
    assert len(receiver.received) == 36  # one job delivered the whole batch
    queued = [job.args for job in await env.redis.queued_jobs()]
    assert queued == [(first,)]  # its own (run by hand here); those of the others withdrawn
    for path, secret in secrets.items():
        got = arrivals(receiver, path)
        assert len({headers["webhook-id"] for _, headers in got}) == 12
        for body, headers in got:
            Webhook(secret).verify(body, headers)
    found = await deliveries(env)
    assert {(d["status"], d["attempts"]) for d in found} == {("SUCCEEDED", 1)}
    assert len(found) == 36


async def test_a_failing_or_slow_endpoint_holds_back_no_other(env: Env, receiver: Receiver) -> None:
    env.webhooks = replace(env.webhooks, timeout=0.5)
    receiver.fixed = {"/down": 500}
    receiver.slow = {"/slow": 2.0}
    await endpoints_and_messages(env, receiver, ["/ok", "/down", "/slow"], 5)
    await env.run_jobs()
    assert len(arrivals(receiver, "/ok")) == 5
    found = await data(env, LOG)
    by_endpoint: dict[str, Counter[str]] = {}
    for message in found["webhookMessages"]["nodes"]:
        for d in message["deliveries"]:
            by_endpoint.setdefault(d["endpointId"], Counter())[d["status"]] += 1
            log = d["attemptLog"]
            assert len(log) == 1
            if d["status"] == "PENDING":  # failed, retrying on the schedule
                assert log[0]["statusCode"] == 500 or log[0]["error"] == "timeout after 0.5 s"
    assert sorted(c.most_common(1)[0] for c in by_endpoint.values()) == [
        ("PENDING", 5),
        ("PENDING", 5),
        ("SUCCEEDED", 5),
    ]


async def test_a_batch_lost_mid_way_is_sent_again_after_its_lease(
    env: Env, receiver: Receiver
) -> None:
    await endpoints_and_messages(env, receiver, ["/a", "/b"], 3)
    first = (await deliveries(env))[0]["id"]
    async with env.write() as conn:  # a worker leases the batch, then dies
        lost = await lease_deliveries(conn, first, env.clock(), env.webhooks.lease, 99)
    assert len(lost) == 6
    await env.redis.flushdb()
    assert await outbox_sweeper(ctx_of(env)) == 0  # leased: not due again yet
    env.clock.set(env.clock() + env.webhooks.lease)
    assert await outbox_sweeper(ctx_of(env)) == 6
    await env.run_jobs()
    assert Counter(receiver.paths) == {"/a": 3, "/b": 3}
    assert len({headers["webhook-id"] for _, headers in receiver.received}) == 3
    assert {d["status"] for d in await deliveries(env)} == {"SUCCEEDED"}


async def test_concurrent_batches_never_send_a_delivery_twice(env: Env, receiver: Receiver) -> None:
    env.webhooks = replace(env.webhooks, batch=4, concurrency=3)
    await endpoints_and_messages(env, receiver, ["/a", "/b"], 15)
    ids = [d["id"] for d in await deliveries(env)]
    ctx = ctx_of(env)
    outcomes = await asyncio.gather(*(deliver_webhook(ctx, i) for i in ids[::3]))
    await env.run_jobs()  # whatever the jobs above left due
    assert set(outcomes) <= {"succeeded", "skipped"}
    sent = Counter(
        (path, h["webhook-id"])
        for (_, h), path in zip(receiver.received, receiver.paths, strict=True)
    )
    assert len(sent) == 30 and set(sent.values()) == {1}
    assert {(d["status"], d["attempts"]) for d in await deliveries(env)} == {("SUCCEEDED", 1)}
    jobs = await env.redis.queued_jobs()
    assert [j for j in jobs if j.function == DELIVER_WEBHOOK] == []
