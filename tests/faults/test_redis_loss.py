"""Redis flushed, then killed and restarted empty, mid-run (issue 9; SPEC §0: losing all of
Redis loses no event and no webhook message; §7: no missed crossing; §10: at-least-once
delivery with a stable ``webhook-id``).

The stack runs in the production layout (API and worker processes) on a redis-server of
the test's own, so it can be flushed and killed without touching anything else. Four
customers on contracts (1.00 per unit) are watched by spend alerts of their own and by an
organization-wide one; two webhook endpoints on a real local HTTP receiver subscribe to
``alert.triggered``. Clients ingest events that take every customer across every
threshold while the test FLUSHALLs Redis (queued jobs, job locks, the alert generations:
all gone), then kills redis-server and restarts it empty, ingest going on throughout.

Then: every acknowledged event is stored exactly once; every crossing is one message
(none lost, none doubled) that reaches each endpoint, signed (``svix`` verifies it), under
one ``webhook-id``; every delivery succeeds; every evaluation request is answered, within a
bounded time after Redis is back (the outbox sweeper re-enqueues what Redis lost).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from svix.webhooks import Webhook

from models.alerts import AlertEvaluationRow
from models.db import Database
from models.tables import table
from models.webhooks import WebhookDeliveryRow, WebhookMessageRow
from tests.conftest import Backend
from tests.e2e.stack import (
    ALERT,
    CONTRACT,
    CUSTOMER,
    ENDPOINT,
    LEASE,
    SWEEP,
    Receiver,
    Stack,
    iso,
    month_start,
    running_stack,
)
from tests.faults.support import (
    Ledger,
    RedisServer,
    dedupe_keys,
    organization_id,
    poll_async,
    send_until_acknowledged,
    stored_events,
)
from tests.figures import record

ORG = "RedisLoss"
CUSTOMERS = 4
THRESHOLDS = ("100", "300", "600")  # each customer's own spend alerts
ANY_CUSTOMER = "450"  # an organization-wide spend alert
UNITS = 10  # per event
EVENTS = 80  # per customer: 800 units, over every threshold
CLIENTS = 4
PATHS = ("/first", "/second")
FLUSH_AT, KILL_AT, RESTART_AT = 0.25, 0.5, 0.7  # shares of the batches acknowledged
DOWN_AT_MOST = 3.0  # seconds Redis stays down if ingest makes no progress meanwhile
EVALUATION_SLACK = 10  # workers.deliver.EVALUATION_SLACK: a lost evaluation is swept then
SETTLE = EVALUATION_SLACK + LEASE + SWEEP + 40  # bound on recovery after Redis is back
RUN_DEADLINE = 60.0

evaluations = table(AlertEvaluationRow)
deliveries = table(WebhookDeliveryRow)
messages = table(WebhookMessageRow)


@dataclass
class World:
    customers: list[str]
    crossings: set[tuple[str, str]]
    """(alert id, customer id) of every crossing the run must notify, once."""
    secrets: dict[str, str]
    """Endpoint path → signing secret."""
    endpoints: dict[str, str]
    """Endpoint id → path."""


def create_world(stack: Stack) -> World:
    rate_card_id = stack.units_rate_card()
    endpoints, secrets = {}, {}
    for path in PATHS:
        created = stack.gql(
            ENDPOINT,
            input={"url": stack.hooks.url(path), "eventTypes": ["alert.triggered"]},
        )["createWebhookEndpoint"]
        endpoints[created["id"]] = path
        secrets[path] = created["secret"]

    def alert(name: str, threshold: str, customer_id: str | None) -> str:
        spec = {"name": name, "alertType": "SPEND_THRESHOLD_REACHED", "threshold": threshold}
        found = stack.gql(ALERT, input=spec | ({"customerId": customer_id} if customer_id else {}))
        return str(found["createAlert"]["id"])

    customers, crossings = [], set()
    for n in range(CUSTOMERS):
        customer_id = stack.gql(CUSTOMER, input={"name": f"Customer {n}"})["createCustomer"]["id"]
        contract = {
            "customerId": customer_id,
            "rateCardId": rate_card_id,
            "startingAt": iso(month_start(datetime.now(UTC))),
        }
        stack.gql(CONTRACT, input=contract)
        for threshold in THRESHOLDS:
            crossings.add((alert(f"{n} over {threshold}", threshold, customer_id), customer_id))
        customers.append(customer_id)
    anyone = alert(f"anyone over {ANY_CUSTOMER}", ANY_CUSTOMER, None)
    crossings |= {(anyone, customer_id) for customer_id in customers}
    return World(customers, crossings, secrets, endpoints)


@dataclass
class Run:
    ledger: Ledger = field(default_factory=Ledger)
    batches: int = 0
    acknowledged_batches: int = 0
    jobs_flushed: int = 0
    acknowledged_while_down: int = 0
    back_at: float = 0.0


def batches_of(world: World) -> list[list[dict[str, Any]]]:
    """One event per customer per batch, so every batch moves every customer on."""
    return [
        [
            {
                "transaction_id": f"r{n}-{i:03d}",
                "customer_id": customer_id,
                "event_type": "job",
                "timestamp": iso(datetime.now(UTC)),
                "properties": {"units": UNITS},
            }
            for n, customer_id in enumerate(world.customers)
        ]
        for i in range(EVENTS)
    ]


async def client(
    base: str, key: str, mine: list[list[dict[str, Any]]], run: Run, deadline: float
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=20) as http:
        for batch in mine:
            await send_until_acknowledged(http, run.ledger, batch, deadline)
            run.acknowledged_batches += 1
            await asyncio.sleep(0.02)  # pacing: the worker evaluates between batches


async def faults(redis: RedisServer, run: Run, deadline: float) -> None:
    """FLUSHALL, then SIGKILL redis-server and restart it empty, as ingest goes on."""

    async def until(share: float) -> None:
        while run.acknowledged_batches < share * run.batches:
            assert time.monotonic() < deadline, "ingest made no progress"
            await asyncio.sleep(0.01)

    await until(FLUSH_AT)
    run.jobs_flushed = redis.queued_jobs()
    await asyncio.to_thread(redis.flushall)
    await until(KILL_AT)
    await asyncio.to_thread(redis.kill)
    before, down_until = len(run.ledger.acknowledged), time.monotonic() + DOWN_AT_MOST
    while time.monotonic() < down_until:  # ingest goes on without Redis, for a while
        if run.acknowledged_batches >= RESTART_AT * run.batches:
            break
        await asyncio.sleep(0.01)
    run.acknowledged_while_down = len(run.ledger.acknowledged) - before
    await asyncio.to_thread(redis.restart)
    run.back_at = time.monotonic()


async def ingest_through_redis_loss(stack: Stack, redis: RedisServer, world: World) -> Run:
    run = Run()
    all_batches = batches_of(world)
    run.batches = len(all_batches)
    deadline = time.monotonic() + RUN_DEADLINE
    shares = [all_batches[n::CLIENTS] for n in range(CLIENTS)]
    await asyncio.gather(
        faults(redis, run, deadline),
        *(client(stack.base, stack.key, mine, run, deadline) for mine in shares),
    )
    return run


async def unsettled(conn: AsyncConnection, org_id: str) -> dict[str, int]:
    """Evaluation requests not answered yet, and deliveries by status."""
    pending = await conn.execute(
        select(func.count()).where(
            (evaluations.c.org_id == org_id) & (evaluations.c.evaluated < evaluations.c.requests)
        )
    )
    by_status = await conn.execute(
        select(deliveries.c.status, func.count())
        .where(deliveries.c.org_id == org_id)
        .group_by(deliveries.c.status)
    )
    return {"evaluations_pending": int(pending.scalar_one()), **dict(by_status.all())}


async def settle_and_check(
    stack: Stack, database_url: str, world: World, run: Run
) -> dict[str, int]:
    org_id = await organization_id(database_url, ORG)
    receiver = stack.hooks
    expected = len(world.crossings)
    db = Database(database_url)
    try:

        async def settled() -> dict[str, int] | None:
            async with db.read() as conn:
                state = await unsettled(conn, org_id)
            received = {p: {r.webhook_id for r in receiver.of(p)} for p in PATHS}
            done = (
                state["evaluations_pending"] == 0
                and state.get("succeeded", 0) == expected * len(PATHS)
                and set(state) == {"evaluations_pending", "succeeded"}
                and all(len(ids) >= expected for ids in received.values())
            )
            return state if done else None

        try:
            await poll_async(settled, "every crossing delivered to every endpoint", SETTLE)
        except AssertionError as failure:
            async with db.read() as conn:
                state = await unsettled(conn, org_id)
            seen = {p: len(receiver.of(p)) for p in PATHS}
            raise AssertionError(f"{failure}: {state}, received {seen}\n{stack.logs()}") from None
        settle_seconds = time.monotonic() - run.back_at
        async with db.read() as conn:
            rows = await stored_events(conn, org_id)
            keys = await dedupe_keys(conn, org_id)
            found = (
                await conn.execute(
                    select(messages.c.id, messages.c.body).where(
                        (messages.c.org_id == org_id) & (messages.c.type == "alert.triggered")
                    )
                )
            ).all()
            owed = (
                await conn.execute(
                    select(deliveries.c.message_id, deliveries.c.endpoint_id).where(
                        deliveries.c.org_id == org_id
                    )
                )
            ).all()
    finally:
        await db.dispose()

    # no event lost, none stored twice
    per_tx = Counter(row.event.transaction_id for row in rows)
    stored = set(per_tx)
    assert sorted(run.ledger.acknowledged - stored) == [], "acknowledged but not stored"
    assert [tx for tx, n in per_tx.items() if n > 1] == [], "stored twice"
    assert set(keys) == stored
    # every crossing is exactly one message; each endpoint is owed every message once
    bodies = {message_id: body for message_id, body in found}
    notified = Counter(
        (json.loads(body)["data"]["alert_id"], json.loads(body)["data"]["customer_id"])
        for body in bodies.values()
    )
    assert set(notified) == world.crossings, "a crossing was not notified"
    assert max(notified.values()) == 1, f"a crossing notified twice: {notified}"
    assert sorted(owed) == sorted((m, e) for m in bodies for e in world.endpoints)
    # each endpoint received every message, signed, under its stable webhook-id, and nothing
    # else (a second receipt of one webhook-id is an at-least-once redelivery)
    ids = {path: {r.webhook_id for r in receiver.of(path)} for path in PATHS}
    lost = sum(len(set(bodies) - ids[path]) for path in PATHS)
    redelivered = 0
    for path in PATHS:
        received = receiver.of(path)
        assert {r.webhook_id for r in received} == set(bodies), path
        for r in received:
            Webhook(world.secrets[path]).verify(r.body, r.headers)
            assert r.body.decode() == bodies[r.webhook_id]
        redelivered += len(received) - len({r.webhook_id for r in received})
    return {
        "events_acknowledged": len(run.ledger.acknowledged),
        "events_stored": len(stored),
        "events_lost": len(run.ledger.acknowledged - stored),
        "acknowledged_while_redis_down": run.acknowledged_while_down,
        "ingest_server_errors": run.ledger.server_errors,
        "jobs_flushed": run.jobs_flushed,
        "crossings": len(world.crossings),
        "webhooks_emitted": len(owed),
        "webhooks_delivered": sum(len(ids[path] & set(bodies)) for path in PATHS),
        "webhooks_lost": lost,
        "redeliveries": redelivered,
        "seconds_to_settle_after_restart": round(settle_seconds),
    }


def test_flushing_and_restarting_redis_loses_no_event_crossing_or_webhook(
    backend: Backend, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    try:
        with running_stack(
            backend.name,
            tmp_path,
            backend.database_url,
            redis.url,
            receiver=Receiver(),
            org=ORG,
        ) as stack:
            world = create_world(stack)
            with stack.supervised_worker() as worker_exits:
                run = asyncio.run(ingest_through_redis_loss(stack, redis, world))
                assert redis.restarts == 1
                figures = asyncio.run(settle_and_check(stack, backend.database_url, world, run))
            assert worker_exits == [], "the worker must ride out the outage, not exit"
    finally:
        redis.close()
    record(
        f"redis flushed and restarted mid-run [{backend.name}]",
        **figures,
        worker_exits=len(worker_exits),
    )
