"""Ingest under a killed server (issue 9, "prove nothing is lost"; SPEC §1: accepted events
are durable before the response, a duplicate is never stored or counted twice).

A real ``meterline serve`` process holds a catalog (count, sum by region, unique metrics, a
rate card with one region left unpriced) and three customers on contracts. Ten concurrent
clients post batches of events with unique transaction ids, about one batch in ten sent
again (exactly, or overlapping earlier acknowledged events of any client) and one in
twenty sent twice at the same time, while the test SIGKILLs the server twice mid-run and
restarts it on the same port and database. A client treats a lost connection or a 5xx as
"not acknowledged" and sends the same batch again.

Then the database is held to the promises: every acknowledged event is stored exactly once
(with its dedupe key, as sent, for the right customer), nothing is stored that was not
sent, no ``200`` counted an event as accepted twice, the rollups equal a recomputation
from the raw events (``billing.metering``), and the draft invoice read through GraphQL
equals the billing core's rating of the raw events from scratch.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from models.db import Database
from models.store.metrics import active_metrics
from models.store.rollup_reads import window_partials
from tests.conftest import Backend
from tests.e2e.stack import (
    CONTRACT,
    CUSTOMER,
    METRIC,
    PRODUCT,
    RATE_CARD,
    Stack,
    iso,
    month_start,
    running_stack,
)
from tests.faults.support import (
    DRAFTS,
    Ledger,
    core_invoice,
    dedupe_keys,
    graphql_invoice,
    organization_id,
    rated_from_raw_events,
    send_until_acknowledged,
    stored_events,
)
from tests.figures import record
from tests.integration.support import assert_same_usage, recompute, to_usage

ORG = "Crash"
CLIENTS = 10
BATCHES = 20  # per client
BATCH = 20  # events per batch
RESEND = 0.1  # the share of batches sent again once acknowledged
TWINS = 0.05  # the share of batches sent twice concurrently (on two connections)
KILLS = (0.3, 0.65)  # kill the server once these shares of the batches are acknowledged
RUN_DEADLINE = 90.0  # seconds for the whole ingest, restarts included
REGIONS = ("eu", "us", "ap")  # "ap" has no rate: it shows as unrated usage


@dataclass
class Catalog:
    customers: dict[str, str]
    """Ingest ref (an id or an alias) → customer id."""


def create_catalog(stack: Stack, start: datetime) -> Catalog:
    """Three metrics, their products on one rate card, three customers on contracts."""
    metrics = {
        "requests": {"name": "Requests", "aggregationType": "COUNT"},
        "bytes": {
            "name": "Bytes by region",
            "aggregationType": "SUM",
            "aggregationKey": "bytes",
            "propertyFilters": [
                {"name": "bytes", "exists": True},
                {"name": "region", "exists": True},
            ],
            "groupKeys": [["region"]],
        },
        "users": {
            "name": "Active users",
            "aggregationType": "UNIQUE",
            "aggregationKey": "user_id",
            "propertyFilters": [{"name": "user_id", "exists": True}],
        },
    }
    products = {}
    for name, metric in metrics.items():
        metric_id = stack.gql(METRIC, metric=metric)["createBillableMetric"]["id"]
        product = {"name": metric["name"], "type": "USAGE", "billableMetricId": metric_id}
        if name == "bytes":
            product["pricingGroupKey"] = ["region"]
        products[name] = stack.gql(PRODUCT, input=product)["createProduct"]["id"]

    def rate(product: str, price: str, **group: str) -> dict[str, Any]:
        found = {
            "productId": products[product],
            "startingAt": "2020-01-01T00:00:00Z",
            "rateType": "FLAT",
            "price": price,
        }
        return found | ({"pricingGroupValues": group} if group else {})

    rates = [
        rate("requests", "0.001"),
        rate("bytes", "0.0001", region="eu"),
        rate("bytes", "0.00015", region="us"),
        rate("users", "0.50"),
    ]
    card = stack.gql(RATE_CARD, input={"name": "Standard", "rates": rates})
    customers = {}
    for n, aliases in enumerate([[], ["crash-alias-1"], []]):
        created = stack.gql(CUSTOMER, input={"name": f"Customer {n}", "ingestAliases": aliases})
        customer_id = created["createCustomer"]["id"]
        contract = {
            "customerId": customer_id,
            "rateCardId": card["createRateCard"]["id"],
            "startingAt": iso(start),
        }
        stack.gql(CONTRACT, input=contract)
        for ref in [customer_id, *aliases]:
            customers[ref] = customer_id
    return Catalog(customers)


@dataclass
class Run:
    """The clients' shared view: the ledger, the events acknowledged so far (what an
    overlapping re-send draws from) and how many first sends were acknowledged."""

    ledger: Ledger = field(default_factory=Ledger)
    pool: list[dict[str, Any]] = field(default_factory=list)
    first_sends: int = 0
    kills: int = 0


def make_batch(
    rng: random.Random, client: int, number: int, refs: list[str], since: datetime
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    span = (now - since).total_seconds()
    events = []
    for i in range(BATCH):
        properties: dict[str, Any] = {"user_id": f"u{rng.randrange(40)}"}
        if rng.random() < 0.9:
            properties["region"] = rng.choice(REGIONS)
            properties["bytes"] = rng.choice([rng.randrange(1, 5000), f"{rng.randrange(1, 999)}.5"])
        events.append(
            {
                "transaction_id": f"c{client}-b{number:03d}-{i:02d}",
                "customer_id": rng.choice(refs),
                "event_type": "request",
                "timestamp": iso(now - timedelta(seconds=rng.uniform(0, span))),
                "properties": properties,
            }
        )
    return events


async def client(
    base: str, key: str, n: int, run: Run, refs: list[str], since: datetime, deadline: float
) -> None:
    rng = random.Random(9000 + n)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=20) as http:
        for number in range(BATCHES):
            batch = make_batch(rng, n, number, refs, since)
            if rng.random() < TWINS:  # the same new batch twice at once: one stores it
                run.ledger.resends += 1
                await asyncio.gather(
                    send_until_acknowledged(http, run.ledger, batch, deadline),
                    send_until_acknowledged(http, run.ledger, batch, deadline),
                )
            else:
                await send_until_acknowledged(http, run.ledger, batch, deadline)
            run.first_sends += 1
            run.pool += batch
            if rng.random() >= RESEND:
                continue
            run.ledger.resends += 1
            if rng.random() < 0.5:  # exactly the same batch: nothing new in it
                report = await send_until_acknowledged(http, run.ledger, batch, deadline)
                assert report["accepted"] == 0, report
            else:  # acknowledged events of any client, and some new ones
                old = rng.sample(run.pool, BATCH // 2)
                new = make_batch(rng, n, BATCHES + number, refs, since)[: BATCH // 2]
                mixed = old + new
                rng.shuffle(mixed)
                report = await send_until_acknowledged(http, run.ledger, mixed, deadline)
                assert {e["transaction_id"] for e in old} <= set(report["duplicates"]), report


async def killer(stack: Stack, run: Run, deadline: float) -> None:
    """SIGKILL the server once each share of ``KILLS`` of the batches is acknowledged
    (requests are in flight then: ten clients send without pause), restart it on the
    same port and database."""
    for share in KILLS:
        while run.first_sends < share * CLIENTS * BATCHES:
            assert time.monotonic() < deadline, "the clients made no progress"
            await asyncio.sleep(0.01)
        await asyncio.to_thread(stack.kill_server)
        run.kills += 1
        await asyncio.to_thread(stack.start_server)
        await asyncio.to_thread(stack.wait_ready)


async def ingest_through_kills(stack: Stack, catalog: Catalog, since: datetime) -> Run:
    run = Run()
    deadline = time.monotonic() + RUN_DEADLINE
    refs = sorted(catalog.customers)
    tasks = [client(stack.base, stack.key, n, run, refs, since, deadline) for n in range(CLIENTS)]
    await asyncio.gather(killer(stack, run, deadline), *tasks)
    return run


async def check_the_database(
    stack: Stack, database_url: str, catalog: Catalog, run: Run, since: datetime
) -> dict[str, int]:
    ledger = run.ledger
    org_id = await organization_id(database_url, ORG)
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await stored_events(conn, org_id)
            keys = await dedupe_keys(conn, org_id)
            metrics = await active_metrics(conn, org_id)
            now = datetime.now(UTC)
            window = (month_start(since), month_start(now) + timedelta(days=32))
            by_customer: dict[str, list[Any]] = {c: [] for c in set(catalog.customers.values())}
            for row in rows:
                assert row.customer_id is not None, row
                by_customer[row.customer_id].append(row.event)
            usage = {
                c: await window_partials(conn, org_id, c, metrics, *window) for c in by_customer
            }
            rated = {
                c: await rated_from_raw_events(conn, org_id, c, events, now)
                for c, events in by_customer.items()
            }
    finally:
        await db.dispose()

    per_tx = Counter(row.event.transaction_id for row in rows)
    stored = set(per_tx)
    twice = sorted(tx for tx, n in per_tx.items() if n > 1)
    lost = sorted(ledger.acknowledged - stored)
    assert twice == [], f"stored more than once: {twice[:20]}"
    assert lost == [], f"acknowledged but not stored: {lost[:20]}"
    assert stored <= set(ledger.sent), sorted(stored - set(ledger.sent))[:20]
    # every stored event has its dedupe key and every key its event (a key without its
    # event would turn the re-send of a lost event into a "duplicate")
    assert set(keys) == stored and set(keys.values()) == {1}
    for row in rows:  # stored as sent, for the customer its ref names
        sent = ledger.sent[row.event.transaction_id]
        assert row.event == to_usage(sent)
        assert row.customer_id == catalog.customers[sent["customer_id"]]
    counted_twice = sorted(tx for tx, n in ledger.accepted.items() if n > 1)
    assert counted_twice == [], f"reported accepted by two responses: {counted_twice[:20]}"
    assert set(ledger.accepted) <= stored

    for customer_id, events in by_customer.items():
        want = recompute(events, metrics, *window)
        got = {metric_id: dict(groups) for metric_id, groups in usage[customer_id].items()}
        assert_same_usage(metrics, got, want, f"customer {customer_id}")

    for customer_id in by_customer:
        drafts = stack.gql(DRAFTS, id=customer_id)["customer"]["draftInvoices"]
        assert drafts, f"customer {customer_id} has no draft"
        assert [graphql_invoice(d) for d in drafts] == [
            core_invoice(i) for i in rated[customer_id]
        ], f"customer {customer_id}: the draft differs from a rating of the raw events"
        assert sum(Decimal(d["total"]) for d in drafts) > 0
    unrated = [u for c in by_customer for i in rated[c] for u in i.unrated_usage]
    assert unrated, "the unpriced region shows as unrated usage"
    return {
        "sent": len(ledger.sent),
        "acknowledged": len(ledger.acknowledged),
        "stored": len(stored),
        "lost": len(lost),
        "duplicates_stored": sum(per_tx.values()) - len(stored),
        "stored_unacknowledged": len(stored - ledger.acknowledged),
        "accepted_not_reported": len(stored - set(ledger.accepted)),
    }


def test_no_acknowledged_event_is_lost_or_counted_twice_when_the_server_is_killed(
    backend: Backend, tmp_path: Path
) -> None:
    since = max(month_start(datetime.now(UTC)), datetime.now(UTC) - timedelta(hours=1))
    with running_stack(
        backend.name,
        tmp_path,
        backend.database_url,
        backend.redis_url,
        worker=False,
        org=ORG,
    ) as stack:
        catalog = create_catalog(stack, month_start(since))
        run = asyncio.run(ingest_through_kills(stack, catalog, since))
        assert run.kills == len(KILLS)
        assert run.ledger.unanswered > 0, "no request was cut short by a kill"
        figures = asyncio.run(check_the_database(stack, backend.database_url, catalog, run, since))
    record(
        f"ingest, server killed mid-run [{backend.name}]",
        **figures,
        kills=run.kills,
        requests=run.ledger.requests,
        unanswered=run.ledger.unanswered,
        server_errors=run.ledger.server_errors,
        resent_batches=run.ledger.resends,
    )
