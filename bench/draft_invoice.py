"""Draft invoice latency: GraphQL ``customer { draftInvoices }`` at 10k, 100k and 1M events.

What one run measures, per backend (SQLite always; PostgreSQL + Redis when configured):

1. **World.** A fresh database migrated to head; one organization with a read key, 10 usage
   products over 10 billable metrics (``sum`` of ``tokens`` grouped by ``model``, one event
   type each), one flat rate per product on a rate card (lines presented per model, so a
   draft has 10 × 100 usage lines), and one customer with a monthly contract (first of
   month anchor) that started before the open period. "Now" is fixed at
   2026-04-20T12:00Z: the open period is April, and March is past its grace period.
2. **Load.** Events with 100 models (the group values) spread uniformly over the open
   period so far, written through the real ingest transaction
   ``models.store.ingest.record_batch`` (dedupe, store, resolve, roll up) in batches of
   1,000 — not through HTTP, which would only make loading slower. The customer grows from
   10k to 100k to 1M events; each size is measured once loaded.
3. **Latency**, p50 / p95 over ``--repeat`` calls after a warm-up:
   - *GraphQL* (the headline): ``query($id: ID!) { customer(id: $id) { draftInvoices
     { total lines { type amount } } } }`` through ``httpx.ASGITransport`` against
     ``meterline.app.create_app(settings, clock)``, lifespan entered.
   - *store-level drafts*: ``models.drafts.customer_drafts`` on a read connection
     (rollup read + catalog + contracts + assembly, no HTTP/GraphQL).
   - *rollup read*: ``window_partials_many`` for the open period alone, and for an
     unaligned ~30-day window (as a contract-start anchor at 13:37:17 gives), which reads
     days, hours and raw-event edges instead of one month row per group.
4. **Raw limits** on the same database, driver only (``sqlite3`` / ``asyncpg``, no
   SQLAlchemy): a ``SELECT`` of the month rows the draft reads (one per metric × group), and
   a ``SELECT`` of the customer's hourly rows of the period (what an hour-only rollup would
   have to read).
5. **Ratios**: drafts p50 ÷ raw select of the rows it needs; 1M ÷ 10k latency; against the
   targets of issue 4 (p50 ≤ 20 ms at 1M, 1M/10k ≤ 1.5).

    python bench/draft_invoice.py [--quick] [--sizes 10000,100000,1000000] [--repeat N]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/0] [--only sqlite|postgres]

``--quick`` loads 10k and 100k only and repeats less. PostgreSQL gets a private
``bench_<random>`` database, dropped at the end; every temporary file is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from backends import (  # bench/ is on sys.path
    add_backend_args,
    asyncpg_dsn,
    backend_urls,
    selected_backends,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from billing.catalog import PriceSpec, Product, ProductType, Rate, RateType
from billing.contracts import Contract
from billing.metering import (
    AggregationType,
    EventTypeFilter,
    MetricDefinition,
    PropertyFilter,
    UsageEvent,
)
from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.settings import Settings
from models.db import Database
from models.drafts import customer_drafts
from models.migrate import upgrade
from models.store.api_keys import create_api_key
from models.store.catalog import create_product, create_rate_card
from models.store.contracts import create_contract
from models.store.customers import create_customer
from models.store.ingest import record_batch
from models.store.metrics import active_metrics, create_metric
from models.store.organizations import get_or_create_organization
from models.store.rollup_reads import window_partials_many

NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
PERIOD = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
UNALIGNED = (
    datetime(2026, 3, 21, 13, 37, 17, tzinfo=UTC),
    datetime(2026, 4, 20, 13, 37, 17, tzinfo=UTC),
)
GRACE = timedelta(hours=24)
METRICS = 10
GROUPS = 100
LOAD_BATCH = 1_000
SIZES = (10_000, 100_000, 1_000_000)
TARGET_P50_MS = 20.0
TARGET_RATIO = 1.5
QUERY = "query($id: ID!) { customer(id: $id) { draftInvoices { total lines { type amount } } } }"

out = Console(width=max(110, Console().width))
log = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # milliseconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    def text(self) -> str:
        return f"{self.p50:.2f} / {self.percentile(0.95):.2f} ms"


@dataclass
class SizeResult:
    events: int
    load_rate: float
    rows: dict[int, int]
    graphql: Timing
    graphql_note: str
    drafts: Timing
    read: Timing
    unaligned: Timing
    raw_month: Timing
    raw_hours: Timing
    total: str


@dataclass
class World:
    org_id: str
    customer_id: str
    read_key: str
    metric_ids: list[str]


# ----------------------------------------------------------------------------- world


async def build_world(db: Database) -> World:
    async with db.write() as conn:
        org_id = await get_or_create_organization(conn, "bench-drafts", NOW)
        _, read_key = await create_api_key(conn, org_id, ["read"], NOW)
        products, metric_ids = [], []
        for n in range(METRICS):
            metric_id = await create_metric(
                conn,
                org_id,
                MetricDefinition(
                    id="",
                    name=f"Tokens {n}",
                    aggregation_type=AggregationType.SUM,
                    event_type_filter=EventTypeFilter(in_values=(f"usage_{n}",)),
                    property_filters=(
                        PropertyFilter("model", exists=True),
                        PropertyFilter("tokens", exists=True),
                    ),
                    aggregation_key="tokens",
                    group_keys=(("model",),),
                ),
                NOW,
            )
            metric_ids.append(metric_id)
            product = Product(
                id="",
                name=f"Tokens {n}",
                type=ProductType.USAGE,
                billable_metric_id=metric_id,
                presentation_group_key=("model",),
            )
            products.append(await create_product(conn, org_id, product, NOW))
        rates = [
            Rate(
                p.id,
                datetime(2026, 1, 1, tzinfo=UTC),
                PriceSpec(RateType.FLAT, price=Decimal("0.000002") * (n + 1)),
            )
            for n, p in enumerate(products)
        ]
        card = await create_rate_card(conn, org_id, "Standard", "USD", rates, NOW)
        customer_id = await create_customer(
            conn, org_id, "Big customer", NOW, ingest_aliases=["big-customer"]
        )
        await create_contract(
            conn,
            org_id,
            Contract(
                id="",
                customer_id=customer_id,
                rate_card_id=card.id,
                starting_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            NOW,
            actor="bench",
        )
    return World(org_id, customer_id, read_key, metric_ids)


def events(first: int, count: int, rng: random.Random) -> Iterator[list[tuple[int, UsageEvent]]]:
    """Batches of events over the open period so far: 10 event types × 100 models."""
    start = PERIOD[0]
    span_us = int((NOW - start) / timedelta(microseconds=1))
    batch: list[tuple[int, UsageEvent]] = []
    for n in range(first, first + count):
        stamp = start + timedelta(microseconds=rng.randrange(span_us))
        usage = UsageEvent(
            transaction_id=f"tx-{n}",
            customer_id="big-customer",
            event_type=f"usage_{rng.randrange(METRICS)}",
            timestamp=stamp,
            properties={"model": f"model-{rng.randrange(GROUPS):03d}", "tokens": str(n % 5000)},
        )
        batch.append((len(batch), usage))
        if len(batch) == LOAD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(db: Database, world: World, first: int, count: int) -> float:
    """Events/s through ``record_batch``, one transaction per batch of 1,000."""
    rng = random.Random(first)
    started = time.perf_counter()
    for batch in events(first, count, rng):
        async with db.write() as conn:
            outcome = await record_batch(conn, world.org_id, batch, NOW)
        if len(outcome.accepted) != len(batch) or outcome.unmatched or outcome.unknown_customer:
            raise RuntimeError(f"batch not fully accepted and rated: {outcome}")
    return count / (time.perf_counter() - started)


# ----------------------------------------------------------------------------- timing


async def timed(call: Callable[[], Awaitable[Any]], repeat: int, warmup: int) -> Timing:
    for _ in range(warmup):
        await call()
    timing = Timing()
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        timing.samples.append((time.perf_counter() - started) * 1000)
    return timing


@contextlib.asynccontextmanager
async def graphql_client(database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, redis_url=redis_url)
    app = create_app(settings, FixedClock(NOW))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield client


async def graphql_draft(client: httpx.AsyncClient, world: World) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": QUERY, "variables": {"id": world.customer_id}},
        headers={"Authorization": f"Bearer {world.read_key}"},
    )
    body: dict[str, Any] = response.json()
    return body


def raw_sqlite_select(path: Path, sql: str, params: tuple[Any, ...], repeat: int) -> Timing:
    conn = sqlite3.connect(path)
    try:
        timing = Timing()
        for i in range(repeat + 3):
            started = time.perf_counter()
            rows = conn.execute(sql, params).fetchall()
            if i >= 3:
                timing.samples.append((time.perf_counter() - started) * 1000)
        assert rows
        return timing
    finally:
        conn.close()


async def raw_postgres_select(dsn: str, sql: str, params: tuple[Any, ...], repeat: int) -> Timing:
    conn = await asyncpg.connect(dsn)
    try:
        statement = await conn.prepare(sql)
        timing = Timing()
        for i in range(repeat + 3):
            started = time.perf_counter()
            rows = await statement.fetch(*params)
            if i >= 3:
                timing.samples.append((time.perf_counter() - started) * 1000)
        assert rows
        return timing
    finally:
        await conn.close()


ROW_COLUMNS = "metric_id, group_json, count, sum, max, latest_ts_us, latest_tx, latest_value"


async def raw_limits(
    database_url: str, world: World, repeat: int
) -> tuple[Timing, Timing, dict[int, int]]:
    """Driver-only SELECTs of the period's month rows and hourly rows, by primary key."""
    url = make_url(database_url)
    where = (
        "org_id = {0} AND customer_id = {1} AND metric_id {metrics} AND grain = {2} "
        "AND bucket >= {3} AND bucket < {4}"
    )
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        marks = ", ".join("?" * len(world.metric_ids))
        sql = f"SELECT {ROW_COLUMNS} FROM usage_rollups WHERE " + where.format(
            *"?????", metrics=f"IN ({marks})"
        )
        stamp = [b.strftime("%Y-%m-%d %H:%M:%S.%f") for b in PERIOD]
        months, hourly = (
            raw_sqlite_select(
                path, sql, (world.org_id, world.customer_id, *world.metric_ids, g, *stamp), repeat
            )
            for g in (2, 0)
        )
        conn = sqlite3.connect(path)
        counts = dict(
            conn.execute(
                "SELECT grain, COUNT(*) FROM usage_rollups WHERE customer_id = ? GROUP BY grain",
                (world.customer_id,),
            ).fetchall()
        )
        conn.close()
        return months, hourly, counts
    dsn = asyncpg_dsn(database_url)
    sql = f"SELECT {ROW_COLUMNS} FROM usage_rollups WHERE " + where.format(
        "$1", "$2", "$4", "$5", "$6", metrics="= ANY($3::varchar[])"
    )
    naive = [b.replace(tzinfo=None) for b in PERIOD]
    ids = world.metric_ids
    month = await raw_postgres_select(
        dsn, sql, (world.org_id, world.customer_id, ids, 2, *naive), repeat
    )
    hours = await raw_postgres_select(
        dsn, sql, (world.org_id, world.customer_id, ids, 0, *naive), repeat
    )
    conn = await asyncpg.connect(dsn)
    counts = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT grain, COUNT(*) FROM usage_rollups WHERE customer_id = $1 GROUP BY grain",
            world.customer_id,
        )
    }
    await conn.close()
    return month, hours, counts


async def measure(
    db: Database, database_url: str, redis_url: str, world: World, plan: Plan
) -> tuple[Timing, str, Timing, Timing, Timing, str]:
    repeat, warmup = plan.repeat, plan.warmup
    async with db.read() as conn:
        metrics = await active_metrics(conn, world.org_id)

    async def drafts() -> Any:
        async with db.read() as conn:
            return await customer_drafts(conn, world.org_id, world.customer_id, NOW, GRACE)

    async def read(window: tuple[datetime, datetime]) -> Any:
        async with db.read() as conn:
            request = [(world.customer_id, *window)]
            return await window_partials_many(conn, world.org_id, request, metrics)

    found = await drafts()
    invoice = found[0].invoices[-1]
    usage_lines = [line for line in invoice.lines if line.type.value == "usage"]
    total = f"{invoice.total} over {len(usage_lines)} usage lines"
    drafts_timing = await timed(drafts, repeat, warmup)
    read_timing = await timed(lambda: read(PERIOD), repeat, warmup)
    unaligned = await timed(lambda: read(UNALIGNED), max(5, repeat // 4), 1)
    async with graphql_client(database_url, redis_url) as client:
        first = await graphql_draft(client, world)
        if first.get("errors"):
            raise RuntimeError(f"GraphQL draftInvoices failed: {first['errors']}")
        drafts_found = first["data"]["customer"]["draftInvoices"]
        note = f"{len(drafts_found)} draft(s), total {drafts_found[-1]['total']}"
        graphql = await timed(lambda: graphql_draft(client, world), repeat, warmup)
    return graphql, note, drafts_timing, read_timing, unaligned, total


# ----------------------------------------------------------------------------- backends


@dataclass
class Plan:
    sizes: tuple[int, ...]
    repeat: int
    warmup: int


async def run_sizes(database_url: str, redis_url: str, plan: Plan, name: str) -> list[SizeResult]:
    db = Database(database_url)
    results = []
    try:
        await upgrade(db)
        world = await build_world(db)
        loaded = 0
        for size in plan.sizes:
            log.print(f"{name}: loading {size - loaded:,} events (to {size:,}) …")
            rate = await load(db, world, loaded, size - loaded)
            loaded = size
            if make_url(database_url).get_backend_name() == "postgresql":
                conn = await asyncpg.connect(asyncpg_dsn(database_url))
                await conn.execute("VACUUM ANALYZE")
                await conn.close()
            log.print(f"{name}: measuring at {size:,} events …")
            graphql, note, drafts, read, unaligned, total = await measure(
                db, database_url, redis_url, world, plan
            )
            raw_month, raw_hours, rows = await raw_limits(database_url, world, plan.repeat)
            results.append(
                SizeResult(
                    size,
                    rate,
                    rows,
                    graphql,
                    note,
                    drafts,
                    read,
                    unaligned,
                    raw_month,
                    raw_hours,
                    total,
                )
            )
    finally:
        await db.dispose()
    return results


def run_backend(
    name: str, plan: Plan, workdir: Path, postgres_url: str | None, redis_url: str | None
) -> list[SizeResult]:
    with backend_urls(workdir, postgres_url, redis_url) as (database_url, app_redis_url):
        return asyncio.run(run_sizes(database_url, app_redis_url, plan, name))


# ----------------------------------------------------------------------------- report


def render(name: str, results: list[SizeResult]) -> None:
    table = Table(
        title=f"{name}: draft invoice of one customer, {METRICS} metrics × {GROUPS} "
        f"groups, open period {PERIOD[0]:%Y-%m-%d}..{PERIOD[1]:%Y-%m-%d}, "
        f"now {NOW:%Y-%m-%dT%H:%MZ} ({os.cpu_count()} cores)"
    )
    for column in ("events", "figure", "p50 / p95", "note"):
        table.add_column(column, justify="right" if column != "note" else "left")
    base = results[0]
    for r in results:
        rows = [
            ("GraphQL draftInvoices", r.graphql.text(), r.graphql_note),
            ("store-level customer_drafts", r.drafts.text(), r.total),
            ("rollup read, open period", r.read.text(), "window_partials_many, 1 request"),
            ("rollup read, unaligned 30 d", r.unaligned.text(), "days + hours + raw edges"),
            (
                "raw SELECT, month rows",
                r.raw_month.text(),
                f"{r.rows.get(2, 0):,} rows, driver only: the rows the draft needs",
            ),
            (
                "raw SELECT, hourly rows",
                r.raw_hours.text(),
                f"{r.rows.get(0, 0):,} rows: what an hour-only rollup would read",
            ),
            (
                "ratio drafts ÷ raw month SELECT",
                f"{r.drafts.p50 / r.raw_month.p50:.1f}×",
                "p50 against p50",
            ),
            (
                f"ratio to {base.events:,} events",
                f"{r.graphql.p50 / base.graphql.p50:.2f}×",
                f"GraphQL p50; target ≤ {TARGET_RATIO}",
            ),
            (
                "load through record_batch",
                f"{r.load_rate:,.0f} ev/s",
                f"rollup rows hour/day/month: {r.rows.get(0, 0):,} / {r.rows.get(1, 0):,} / "
                f"{r.rows.get(2, 0):,}",
            ),
        ]
        for i, (figure, value, note) in enumerate(rows):
            table.add_row(
                f"{r.events:,}" if i == 0 else "",
                figure,
                value,
                note,
                end_section=i == len(rows) - 1,
            )
    out.print(table)
    last = results[-1]
    head = last.graphql
    met_p50 = head.p50 <= TARGET_P50_MS
    ratio = head.p50 / base.graphql.p50
    out.print(
        f"{name} target at {last.events:,} events, GraphQL: p50 {head.p50:.2f} ms "
        f"(≤ {TARGET_P50_MS:.0f} ms: {'[green]met[/]' if met_p50 else '[red]not met[/]'}), "
        f"{last.events:,}/{base.events:,} ratio {ratio:.2f} "
        f"(≤ {TARGET_RATIO}: {'[green]met[/]' if ratio <= TARGET_RATIO else '[red]not met[/]'})"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, fewer repeats")
    parser.add_argument("--sizes", help="comma-separated event counts (growing)")
    parser.add_argument("--repeat", type=int, help="measured calls per figure")
    add_backend_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sizes: tuple[int, ...] = SIZES[:2] if args.quick else SIZES
    if args.sizes:
        sizes = tuple(sorted(int(s) for s in args.sizes.split(",")))
    plan = Plan(sizes, args.repeat or (30 if args.quick else 200), 3 if args.quick else 10)
    for name, postgres_url in selected_backends(args):
        workdir = Path(tempfile.mkdtemp(prefix=f"meterline-drafts-{name.lower()}-"))
        try:
            render(name, run_backend(name, plan, workdir, postgres_url, args.redis_url))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
