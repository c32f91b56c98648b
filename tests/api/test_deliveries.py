"""Delivering webhooks (SPEC §10) to a real local HTTP receiver: signed with svix, retried
on the schedule with the same ``webhook-id``, ``410`` and five days of failures disable
the endpoint, a worker never sends a leased attempt twice, the sweeper recovers what Redis
lost."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from svix.webhooks import Webhook

from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from tests.api.support import data
from tests.api.worker_support import ctx_of, messages
from tests.conftest import Env
from workers.deliver import deliver_webhook, outbox_sweeper

CREATE = """mutation($url: String!) {
  createWebhookEndpoint(input: {url: $url}) { id secret } }"""
LOG = """{ webhookMessages(first: 50) { nodes { id type deliveries {
  id status attempts endpointId attemptLog { statusCode error } } } } }"""
ENDPOINT = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }"


@dataclass
class Receiver:
    """A local HTTP server answering with the next scripted status (then 200)."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            found.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            status = found.script.pop(0) if found.script else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://localhost:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


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


async def test_failures_are_retried_with_the_same_webhook_id(env: Env, receiver: Receiver) -> None:
    env.webhooks = replace(env.webhooks, schedule=(timedelta(milliseconds=50),) * 7)
    await setup(env, receiver)
    receiver.script = [500, 503, 500]
    for _ in range(4):
        await env.run_jobs()
        env.clock.set(env.clock() + timedelta(seconds=2))
        await outbox_sweeper(ctx_of(env))
    assert len(receiver.received) == 4
    assert len({headers["webhook-id"] for _, headers in receiver.received}) == 1
    (delivery,) = await deliveries(env)
    assert delivery["status"] == "SUCCEEDED"
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [500, 503, 500, 200]


async def test_gone_disables_the_endpoint_at_once(env: Env, receiver: Receiver) -> None:
    endpoint_id, _ = await setup(env, receiver)
    receiver.script = [410]
    await env.run_jobs()
    found = (await data(env, ENDPOINT, id=endpoint_id))["webhookEndpoint"]
    assert found == {"enabled": False, "disabledReason": "the endpoint answered 410 Gone"}
    (delivery,) = await deliveries(env)
    assert delivery["status"] == "FAILED"
    (disabled,) = await messages(env, "webhook_endpoint.disabled")
    assert disabled["data"]["endpoint_id"] == endpoint_id


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
