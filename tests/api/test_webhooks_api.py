"""The webhook hub and offset notification rules through GraphQL (SPEC §8, §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.settings import Settings
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from models.store.webhook_deliveries import AttemptLog, Settled, lease_deliveries, record_attempts
from models.store.webhook_endpoints import endpoint_by_id
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from notifications.queue import DELIVER_WEBHOOK
from tests.api.support import (
    NOW,
    code,
    customer,
    data,
    failure,
    gql,
    iso,
    post,
    walk,
)
from tests.api.worker_support import ARCHIVE_RULE, CREATE_RULE, RULES
from tests.conftest import START, Backend, Env

PUBLIC = "https://1.1.1.1/hooks"  # an IP literal: checked without DNS
ENDPOINT = """
  id url description eventTypes enabled disabledReason failingSince createdAt updatedAt
  previousSecretExpiresAt
"""
CREATE = f"""
mutation($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{ {ENDPOINT} secret }}
}}"""
UPDATE = f"""
mutation($id: ID!, $input: UpdateWebhookEndpointInput!) {{
  updateWebhookEndpoint(id: $id, input: $input) {{ {ENDPOINT} }}
}}"""
DELETE = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }"
ROTATE = """
mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { id secret previousSecretExpiresAt } }
"""
ONE = f"query($id: ID!) {{ webhookEndpoint(id: $id) {{ {ENDPOINT} }} }}"
SECRET = "query($id: ID!) { webhookEndpoint(id: $id) { id secret } }"
LIST = "{ webhookEndpoints { nodes { id url } } }"
DELIVERY = """
  id endpointId status attempts nextAttemptAt updatedAt
  attemptLog { id attemptedAt statusCode durationMs responseBody error }
"""
MESSAGE = f"id type customerId createdAt payload deliveries {{ {DELIVERY} }}"
MESSAGES = f"""
query($first: Int! = 50, $after: String, $type: String, $customer: ID, $since: DateTime) {{
  webhookMessages(first: $first, after: $after, type: $type, customerId: $customer,
                  since: $since) {{
    nodes {{ {MESSAGE} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ONE_MESSAGE = f"query($id: ID!) {{ webhookMessage(id: $id) {{ {MESSAGE} }} }}"
REPLAY = f"""
mutation($id: ID!, $endpoint: ID) {{
  replayWebhookMessage(messageId: $id, endpointId: $endpoint) {{ {MESSAGE} }}
}}"""
REPLAY_FAILED = """
mutation($endpoint: ID!, $since: DateTime!) {
  replayFailedWebhookMessages(endpointId: $endpoint, since: $since)
}"""
AUDIT = """
{ auditLog(first: 100) { nodes { action objectKind objectId changes } } }"""


async def endpoint(env: Env, url: str = PUBLIC, key: str | None = None, **fields: Any) -> Any:
    """A new endpoint (must succeed), every field of it and its secret."""
    found = await data(env, CREATE, key, input={"url": url, **fields})
    return found["createWebhookEndpoint"]


async def emit(
    env: Env, type: str = "customer.created", customer_id: str | None = "cus_1", **fields: Any
) -> str:
    """Write a message to the outbox as a change would (a delivery per subscribed
    endpoint); returns its id."""
    event = WebhookEvent(type, {"customer_id": customer_id, **fields}, customer_id)
    async with env.write() as conn:
        return await Outbox().emit(conn, env.org_id, event, env.clock())


async def fail(env: Env, delivery_id: str, status_code: int = 500) -> None:
    """Log one failed attempt of a delivery, with no retry left."""
    async with env.write() as conn:
        [leased] = await lease_deliveries(
            conn, delivery_id, env.clock(), timedelta(minutes=1), more=0
        )
        log = AttemptLog(status_code, 120, "boom", None)
        await record_attempts(conn, [Settled(leased, log, env.clock(), False, None)])


async def messages(env: Env, key: str | None = None, **variables: Any) -> list[Any]:
    found = await data(env, MESSAGES, key, **variables)
    return list(found["webhookMessages"]["nodes"])


async def message(env: Env, message_id: str) -> Any:
    return (await data(env, ONE_MESSAGE, id=message_id))["webhookMessage"]


async def queued_deliveries(env: Env) -> list[str]:
    """Delivery ids of the ``deliver_webhook`` jobs waiting in Redis."""
    jobs = await env.redis.queued_jobs()
    return sorted(job.args[0] for job in jobs if job.function == DELIVER_WEBHOOK)


def wall_clock(env: Env) -> datetime:
    """Set the test clock to the real time (to the second) and return it: ARQ cannot
    enqueue a job deferred to more than a day before the real time, so tests that look at
    the queue run at the real time."""
    now = datetime.now(UTC).replace(microsecond=0)
    env.clock.set(now)
    return now


async def audit_entries(env: Env) -> list[Any]:
    return list((await data(env, AUDIT))["auditLog"]["nodes"])


# --- endpoints ----------------------------------------------------------------------------


async def test_endpoint_create_read_update_delete_round_trip(env: Env) -> None:
    created = await endpoint(
        env,
        eventTypes=["invoice.finalized", "alert.triggered", "invoice.finalized"],
        description="billing",
    )
    assert created["secret"].startswith("whsec_")
    expected = {
        "url": PUBLIC,
        "description": "billing",
        "eventTypes": ["alert.triggered", "invoice.finalized"],
        "enabled": True,
        "disabledReason": None,
        "failingSince": None,
        "createdAt": NOW,
        "updatedAt": NOW,
        "previousSecretExpiresAt": None,
    }
    assert {k: v for k, v in created.items() if k not in ("id", "secret")} == expected
    endpoint_id = created["id"]
    read = (await data(env, ONE, env.read_key, id=endpoint_id))["webhookEndpoint"]
    assert read == {k: v for k, v in created.items() if k != "secret"}

    env.clock.set(START + timedelta(hours=1))
    changes = {"url": "https://8.8.8.8/in", "eventTypes": [], "description": "all"}
    updated = (await data(env, UPDATE, id=endpoint_id, input=changes))["updateWebhookEndpoint"]
    assert (updated["url"], updated["eventTypes"], updated["description"]) == (
        "https://8.8.8.8/in",
        [],
        "all",
    )
    assert (updated["createdAt"], updated["updatedAt"]) == (NOW, "2026-04-10T13:00:00Z")

    off = await data(env, UPDATE, id=endpoint_id, input={"enabled": False})
    assert off["updateWebhookEndpoint"]["enabled"] is False
    assert off["updateWebhookEndpoint"]["disabledReason"] == "disabled by a user"
    assert off["updateWebhookEndpoint"]["url"] == "https://8.8.8.8/in"  # unchanged
    on = await data(env, UPDATE, id=endpoint_id, input={"enabled": True})
    assert on["updateWebhookEndpoint"]["enabled"] is True
    assert on["updateWebhookEndpoint"]["disabledReason"] is None

    other = await endpoint(env, "https://9.9.9.9/")
    pages = await walk(env, "webhookEndpoints", 1, "id url")
    assert [node["id"] for page in pages for node in page] == [endpoint_id, other["id"]]

    deleted = await data(env, DELETE, id=endpoint_id)
    assert deleted["deleteWebhookEndpoint"]["id"] == endpoint_id
    assert code(await gql(env, ONE, id=endpoint_id)) == "NOT_FOUND"
    assert code(await gql(env, DELETE, id=endpoint_id)) == "NOT_FOUND"
    assert [e["id"] for e in (await data(env, LIST))["webhookEndpoints"]["nodes"]] == [other["id"]]


async def test_a_uniqueness_key_creates_one_endpoint(env: Env) -> None:
    await endpoint(env, uniquenessKey="hook-1")
    again = await failure(env, CREATE, input={"url": PUBLIC, "uniquenessKey": "hook-1"})
    assert again == {"code": "CONFLICT", "field": "uniqueness_key"}
    assert len((await data(env, LIST))["webhookEndpoints"]["nodes"]) == 1


async def test_the_secret_is_shown_to_admin_keys_only(env: Env) -> None:
    created = await endpoint(env)
    found = (await data(env, SECRET, id=created["id"]))["webhookEndpoint"]
    assert found["secret"] == created["secret"]

    body = await gql(env, SECRET, env.read_key, id=created["id"])
    assert code(body) == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["webhookEndpoint", "secret"]
    assert body["data"]["webhookEndpoint"] == {"id": created["id"], "secret": None}
    listed = await gql(env, "{ webhookEndpoints { nodes { secret } } }", env.read_key)
    assert code(listed) == "FORBIDDEN"
    assert created["secret"] not in str(listed)


async def test_rotation_keeps_the_previous_secret_for_the_overlap(env: Env) -> None:
    created = await endpoint(env)
    env.clock.set(START + timedelta(hours=2))
    rotated = (await data(env, ROTATE, id=created["id"]))["rotateWebhookEndpointSecret"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"] == "2026-04-11T14:00:00Z"  # 2 h + 24 h
    async with env.read() as conn:
        stored = await endpoint_by_id(conn, env.org_id, created["id"])
    later = START + timedelta(hours=25, minutes=59)
    assert stored.signing_secrets(later) == [rotated["secret"], created["secret"]]
    assert stored.signing_secrets(START + timedelta(hours=26)) == [rotated["secret"]]

    again = (await data(env, ROTATE, id=created["id"]))["rotateWebhookEndpointSecret"]
    async with env.read() as conn:
        stored = await endpoint_by_id(conn, env.org_id, created["id"])
    assert stored.signing_secrets(env.clock()) == [again["secret"], rotated["secret"]]


async def test_event_types_must_be_known(env: Env) -> None:
    bad = {"url": PUBLIC, "eventTypes": ["invoice.finalized", "invoice.exploded"]}
    assert await failure(env, CREATE, alone=True, input=bad) == {
        "code": "VALIDATION",
        "field": "event_types",
    }
    offset = await endpoint(env, eventTypes=["contract.started.offset"])
    assert offset["eventTypes"] == ["contract.started.offset"]
    assert await failure(
        env, UPDATE, alone=True, id=offset["id"], input={"eventTypes": ["nope"]}
    ) == {"code": "VALIDATION", "field": "event_types"}
    long = {"url": PUBLIC, "description": "x" * 501}
    assert await failure(env, CREATE, input=long) == {"code": "VALIDATION", "field": "description"}
    assert len((await data(env, LIST))["webhookEndpoints"]["nodes"]) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://[::1]/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://example.invalid/hooks",
        "ftp://1.1.1.1/hooks",
        "https://user:pass@1.1.1.1/hooks",
        "not a url",
    ],
)
async def test_urls_must_be_http_and_public(env: Env, url: str) -> None:
    assert await failure(env, CREATE, alone=True, input={"url": url}) == {
        "code": "VALIDATION",
        "field": "url",
    }
    created = await endpoint(env)
    assert await failure(env, UPDATE, alone=True, id=created["id"], input={"url": url}) == {
        "code": "VALIDATION",
        "field": "url",
    }
    assert (await data(env, ONE, id=created["id"]))["webhookEndpoint"]["url"] == PUBLIC


@dataclass
class App:
    client: httpx.AsyncClient
    key: str


@pytest.fixture
async def loopback_allowed(backend: Backend) -> AsyncIterator[App]:
    """An installation that allows webhooks to loopback (as for local receivers)."""
    clock = FixedClock(START)
    settings = Settings(
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        webhook_allowed_private_hosts=["127.0.0.0/8", "receiver.internal"],
    )
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        async with app.state.services.db.write() as conn:
            org_id = await get_or_create_organization(conn, "Local", clock())
            _, key = await create_api_key(conn, org_id, ["admin"], clock())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield App(client, key)


async def test_an_installation_may_allow_private_destinations(
    loopback_allowed: App, env: Env
) -> None:
    def create(url: str) -> Any:
        return post(
            env, CREATE, loopback_allowed.key, client=loopback_allowed.client, input={"url": url}
        )

    for url in ("http://127.0.0.1:8080/hooks", "http://receiver.internal/hooks"):
        body = (await create(url)).json()
        assert "errors" not in body, body
        assert body["data"]["createWebhookEndpoint"]["url"] == url
    for url in ("http://10.0.0.1/hooks", "ftp://127.0.0.1/hooks"):
        body = (await create(url)).json()
        assert [e["extensions"] for e in body["errors"]] == [{"code": "VALIDATION", "field": "url"}]
    refused = await failure(env, CREATE, input={"url": "http://127.0.0.1:8080/hooks"})
    assert refused == {"code": "VALIDATION", "field": "url"}


# --- messages, deliveries, replays ----------------------------------------------------------


async def test_messages_are_listed_oldest_first_with_their_deliveries(env: Env) -> None:
    everything = await endpoint(env)
    invoices = await endpoint(env, "https://8.8.8.8/", eventTypes=["invoice.finalized"])
    first = await emit(env, "customer.created", "cus_1", name="Acme")
    env.clock.set(START + timedelta(minutes=5))
    second = await emit(env, "invoice.finalized", "cus_2", total="12.50")
    env.clock.set(START + timedelta(minutes=10))
    third = await emit(env, "webhook_endpoint.disabled", None)

    found = await messages(env, env.read_key)
    assert [m["id"] for m in found] == [first, second, third]
    assert found[0]["payload"] == {
        "id": first,
        "type": "customer.created",
        "created_at": NOW,
        "data": {"customer_id": "cus_1", "name": "Acme"},
    }
    assert (found[0]["type"], found[0]["customerId"], found[0]["createdAt"]) == (
        "customer.created",
        "cus_1",
        NOW,
    )
    assert found[2]["customerId"] is None
    (only,) = found[0]["deliveries"]
    assert only["endpointId"] == everything["id"]
    assert (only["status"], only["attempts"], only["nextAttemptAt"], only["attemptLog"]) == (
        "PENDING",
        0,
        NOW,
        [],
    )
    assert sorted(d["endpointId"] for d in found[1]["deliveries"]) == sorted(
        [everything["id"], invoices["id"]]
    )
    assert await message(env, second) == found[1]

    assert [m["id"] for m in await messages(env, type="invoice.finalized")] == [second]
    assert [m["id"] for m in await messages(env, customer="cus_1")] == [first]
    assert [m["id"] for m in await messages(env, since=iso(START + timedelta(minutes=5)))] == [
        second,
        third,
    ]
    pages = await walk(env, "webhookMessages", 2, "id deliveries { id }")
    assert [[m["id"] for m in page] for page in pages] == [[first, second], [third]]
    unknown = await failure(env, MESSAGES, type="invoice.exploded")
    assert unknown == {"code": "VALIDATION", "field": "type"}
    assert code(await gql(env, ONE_MESSAGE, id="msg_nope")) == "NOT_FOUND"


async def test_attempts_are_logged_and_a_replay_sends_again(env: Env) -> None:
    start = wall_clock(env)
    hook = await endpoint(env)
    message_id = await emit(env)
    (delivery,) = (await message(env, message_id))["deliveries"]
    env.clock.set(start + timedelta(seconds=30))
    await fail(env, delivery["id"], 503)

    (failed,) = (await message(env, message_id))["deliveries"]
    assert (failed["status"], failed["attempts"], failed["nextAttemptAt"]) == ("FAILED", 1, None)
    (attempt,) = failed["attemptLog"]
    assert {k: v for k, v in attempt.items() if k != "id"} == {
        "attemptedAt": iso(start + timedelta(seconds=30)),
        "statusCode": 503,
        "durationMs": 120,
        "responseBody": "boom",
        "error": None,
    }

    env.clock.set(start + timedelta(minutes=1))
    await env.redis.flushdb()
    replayed = (await data(env, REPLAY, id=message_id))["replayWebhookMessage"]
    (again,) = replayed["deliveries"]
    assert again["id"] == delivery["id"]
    assert (again["status"], again["attempts"], again["nextAttemptAt"]) == (
        "PENDING",
        0,
        iso(start + timedelta(minutes=1)),
    )
    assert len(again["attemptLog"]) == 1  # the log stays
    assert await queued_deliveries(env) == [delivery["id"]]
    assert await message(env, message_id) == replayed

    late = await endpoint(env, "https://9.9.9.9/")
    to_late = await data(env, REPLAY, id=message_id, endpoint=late["id"])
    deliveries = {d["endpointId"]: d for d in to_late["replayWebhookMessage"]["deliveries"]}
    assert sorted(deliveries) == sorted([hook["id"], late["id"]])
    assert (deliveries[late["id"]]["status"], deliveries[late["id"]]["attempts"]) == ("PENDING", 0)
    assert await queued_deliveries(env) == sorted([delivery["id"], deliveries[late["id"]]["id"]])

    assert code(await gql(env, REPLAY, id="msg_nope")) == "NOT_FOUND"
    assert code(await gql(env, REPLAY, id=message_id, endpoint="whep_nope")) == "NOT_FOUND"


async def test_replaying_the_failed_messages_of_an_endpoint_since_a_time(env: Env) -> None:
    start = wall_clock(env)
    hook = await endpoint(env)
    other = await endpoint(env, "https://8.8.8.8/")
    ids = []
    for minute in (0, 10, 20):
        env.clock.set(start + timedelta(minutes=minute))
        ids.append(await emit(env))
    for message_id in ids:
        for delivery in (await message(env, message_id))["deliveries"]:
            if delivery["endpointId"] == hook["id"] and message_id != ids[1]:
                await fail(env, delivery["id"])
    # hook: message 0 failed, 1 pending, 2 failed; other: all pending
    since = iso(start + timedelta(minutes=5))
    await env.redis.flushdb()
    assert (await data(env, REPLAY_FAILED, endpoint=hook["id"], since=since)) == {
        "replayFailedWebhookMessages": 1
    }
    (replayed,) = [
        d for d in (await message(env, ids[2]))["deliveries"] if d["endpointId"] == hook["id"]
    ]
    assert (replayed["status"], replayed["attempts"]) == ("PENDING", 0)
    assert await queued_deliveries(env) == [replayed["id"]]
    (untouched,) = [
        d for d in (await message(env, ids[0]))["deliveries"] if d["endpointId"] == hook["id"]
    ]
    assert untouched["status"] == "FAILED"

    assert (await data(env, REPLAY_FAILED, endpoint=hook["id"], since=since)) == {
        "replayFailedWebhookMessages": 0
    }
    everything = await data(env, REPLAY_FAILED, endpoint=hook["id"], since=iso(start))
    assert everything == {"replayFailedWebhookMessages": 1}
    assert (await data(env, REPLAY_FAILED, endpoint=other["id"], since=iso(start))) == {
        "replayFailedWebhookMessages": 0
    }
    assert code(await gql(env, REPLAY_FAILED, endpoint="whep_nope", since=NOW)) == "NOT_FOUND"


async def test_a_deleted_endpoint_keeps_its_delivery_log(env: Env) -> None:
    hook = await endpoint(env)
    message_id = await emit(env)
    await data(env, DELETE, id=hook["id"])
    (delivery,) = (await message(env, message_id))["deliveries"]
    assert delivery["endpointId"] == hook["id"]
    assert code(await gql(env, REPLAY, id=message_id, endpoint=hook["id"])) == "NOT_FOUND"
    later = await emit(env)
    assert (await message(env, later))["deliveries"] == []


# --- access, isolation, audit ---------------------------------------------------------------


@dataclass
class World:
    endpoint_id: str
    message_id: str
    rule_id: str


async def world(env: Env) -> World:
    hook = await endpoint(env)
    message_id = await emit(env)
    rule = {"name": "r", "trigger": "CONTRACT_STARTED", "offset": "P1D"}
    rule_id = (await data(env, CREATE_RULE, input=rule))["createOffsetRule"]["id"]
    return World(hook["id"], message_id, rule_id)


def by_id(w: World) -> list[tuple[str, dict[str, Any]]]:
    """Every operation naming one of ``w``'s objects."""
    return [
        (ONE, {"id": w.endpoint_id}),
        (SECRET, {"id": w.endpoint_id}),
        (UPDATE, {"id": w.endpoint_id, "input": {"description": "mine"}}),
        (UPDATE, {"id": w.endpoint_id, "input": {"enabled": False}}),
        (ROTATE, {"id": w.endpoint_id}),
        (DELETE, {"id": w.endpoint_id}),
        (ONE_MESSAGE, {"id": w.message_id}),
        (REPLAY, {"id": w.message_id}),
        (REPLAY, {"id": w.message_id, "endpoint": w.endpoint_id}),
        (REPLAY_FAILED, {"endpoint": w.endpoint_id, "since": NOW}),
        (ARCHIVE_RULE, {"id": w.rule_id}),
    ]


async def test_another_organization_sees_and_changes_nothing(env: Env) -> None:
    mine = await world(env)
    before = (
        await data(env, ONE, id=mine.endpoint_id),
        await message(env, mine.message_id),
        await data(env, RULES),
        await data(env, SECRET, id=mine.endpoint_id),
    )
    _, other_key = await env.new_org("Other")
    for query, variables in by_id(mine):
        assert code(await gql(env, query, other_key, **variables)) == "NOT_FOUND", query
    assert (await data(env, LIST, other_key))["webhookEndpoints"]["nodes"] == []
    assert await messages(env, other_key) == []
    assert (await data(env, RULES, other_key))["offsetRules"] == []
    after = (
        await data(env, ONE, id=mine.endpoint_id),
        await message(env, mine.message_id),
        await data(env, RULES),
        await data(env, SECRET, id=mine.endpoint_id),
    )
    assert after == before

    theirs = await endpoint(env, key=other_key)
    cross = await gql(env, REPLAY, id=mine.message_id, endpoint=theirs["id"])
    assert code(cross) == "NOT_FOUND"
    assert (await message(env, mine.message_id))["deliveries"] == before[1]["deliveries"]


async def test_read_keys_read_and_customer_tokens_are_refused(env: Env) -> None:
    mine = await world(env)
    customer_id = await customer(env)
    token_query = """
    mutation($input: CreateCustomerTokenInput!) { createCustomerToken(input: $input) { token } }"""
    token = (await data(env, token_query, input={"customerId": customer_id}))[
        "createCustomerToken"
    ]["token"]
    rule = {"name": "r", "trigger": "CONTRACT_STARTED", "offset": "P1D"}
    creations = [(CREATE, {"input": {"url": PUBLIC}}), (CREATE_RULE, {"input": rule})]
    mutations = [(q, v) for q, v in by_id(mine) if q.lstrip().startswith("mutation")]
    reads = [(LIST, {}), (MESSAGES, {}), (RULES, {}), (ONE, {"id": mine.endpoint_id})]
    reads.append((ONE_MESSAGE, {"id": mine.message_id}))
    for query, variables in creations + mutations:
        assert code(await gql(env, query, env.read_key, **variables)) == "FORBIDDEN", query
    for query, variables in creations + mutations + reads:
        assert code(await gql(env, query, token, **variables)) == "FORBIDDEN", query
    for query, variables in reads:
        assert "errors" not in await gql(env, query, env.read_key, **variables), query


async def test_every_mutation_is_audited_without_secrets(env: Env) -> None:
    hook = await endpoint(env, description="first")
    await data(env, UPDATE, id=hook["id"], input={"description": "second"})
    rotated = (await data(env, ROTATE, id=hook["id"]))["rotateWebhookEndpointSecret"]
    message_id = await emit(env)
    await data(env, REPLAY, id=message_id)
    await data(env, REPLAY_FAILED, endpoint=hook["id"], since=NOW)
    rule = {"name": "r", "trigger": "CONTRACT_STARTED", "offset": "P1D"}
    rule_id = (await data(env, CREATE_RULE, input=rule))["createOffsetRule"]["id"]
    await data(env, ARCHIVE_RULE, id=rule_id)
    await data(env, DELETE, id=hook["id"])

    entries = await audit_entries(env)
    assert [(e["action"], e["objectKind"], e["objectId"]) for e in reversed(entries)] == [
        ("createWebhookEndpoint", "webhook_endpoint", hook["id"]),
        ("updateWebhookEndpoint", "webhook_endpoint", hook["id"]),
        ("rotateWebhookEndpointSecret", "webhook_endpoint", hook["id"]),
        ("replayWebhookMessage", "webhook_message", message_id),
        ("replayFailedWebhookMessages", "webhook_endpoint", hook["id"]),
        ("createOffsetRule", "offset_rule", rule_id),
        ("archiveOffsetRule", "offset_rule", rule_id),
        ("deleteWebhookEndpoint", "webhook_endpoint", hook["id"]),
    ]
    changes = {e["action"]: e["changes"] for e in entries}
    assert changes["createWebhookEndpoint"] == {
        "url": PUBLIC,
        "event_types": [],
        "description": "first",
        "enabled": True,
    }
    assert changes["updateWebhookEndpoint"]["description"] == "second"
    assert changes["createOffsetRule"] == {
        "name": "r",
        "trigger": "contract.started",
        "offset": "P1D",
    }
    assert changes["replayFailedWebhookMessages"]["deliveries"] == 0
    assert hook["secret"] not in str(entries) and rotated["secret"] not in str(entries)
