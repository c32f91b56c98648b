"""Ingest throughput: ``POST /v1/ingest`` against the raw insert limit of the same database.

What one run measures, per backend (SQLite always; PostgreSQL + Redis when configured):

1. **Through the API.** A real ``uvicorn`` process serving ``meterline.app:create_app`` (the
   same factory ``meterline serve`` runs, default uvicorn settings) on 127.0.0.1, against a
   fresh database migrated with ``meterline migrate``, an ingest key from
   ``meterline keys create --org bench --scope ingest`` and a catalog of five customers
   (each also reachable by an ingest alias) and three billable metrics: a count, a sum
   grouped by ``region`` and a unique count of ``user_id``, so every event is deduplicated,
   stored and rolled up into three metrics. ``--clients`` concurrent keep-alive
   ``httpx.AsyncClient`` connections (one load-generator process, on the same 2 cores as the
   server) post batches of 100 events with unique transaction ids and timestamps spread
   over the last six hours. After a warm-up, requests completing in the measured window
   count: accepted events/s, p50/p99 latency, the slowest one-second slice, the server
   process' CPU. Every response must be 200 with ``accepted`` equal to the batch size and no
   warnings; anything else is counted as an error.
   SQLite runs the zero-configuration layout (embedded Redis, in-process worker);
   PostgreSQL runs the production layout (``REDIS_URL``, no in-process worker).
2. **Raw limit.** With the server stopped, plain ``executemany`` of rows shaped like
   ``usage_events`` into the same table of the same database, 100 rows per transaction: the
   sync ``sqlite3`` module with WAL + ``synchronous=NORMAL`` (the product's settings), or a
   plain asyncpg connection (one connection, and ``--clients`` connections at once).
3. **Ratio** API events/s ÷ best raw rows/s, and the targets of issue 2 (≥ 50,000 events/s
   on SQLite, ≥ 30,000 on PostgreSQL on this 2-core machine, load generator included).
4. **Memory**: the server's RSS (``/proc/PID/status``) when ready and after the load; with
   ``--fill-to N`` the load goes on after the window until N events were accepted in all
   (``bench/run.py`` uses it for the RSS-after-1M-events figure).

PostgreSQL gets a private ``bench_<random>`` database created through the server of
``--postgres-url`` and dropped at the end; Redis is only used as the application's job
queue/pub-sub. Every process and temporary file is removed at the end, also on Ctrl-C.

    python bench/ingest.py [--quick] [--seconds N] [--clients N]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/0] [--profile DIR] [--fill-to N]

``--profile DIR`` attaches ``py-spy record`` to the server during the measured window and
writes a flame graph per backend there (its sampling slows the server: figures of a
profiled run are not the benchmark's).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import raw_limits  # bench/ is on sys.path
from backends import add_backend_args, asyncpg_dsn, backend_urls, selected_backends
from harness import (
    BATCH,
    LoadResult,
    clean_env,
    log,
    memory_mb,
    meterline,
    py_spy,
    run_load,
    scan_server_log,
    server,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from billing.metering import AggregationType, MetricDefinition, PropertyFilter
from models.db import Database
from models.store.customers import create_customer
from models.store.metrics import create_metric
from models.store.organizations import get_or_create_organization

TARGETS = {"SQLite": 50_000, "PostgreSQL": 30_000}
CUSTOMERS = 5

out = Console(width=max(110, Console().width))


@dataclass
class BackendResult:
    name: str
    api: LoadResult
    raw: dict[str, float]
    server_problems: Counter[str]
    server_log_sample: list[str]
    load_before: float
    rss_start_mb: float | None = None
    rss_mb: float | None = None
    rss_peak_mb: float | None = None

    @property
    def memory(self) -> tuple[float | None, float | None, float | None]:
        return self.rss_start_mb, self.rss_mb, self.rss_peak_mb


@dataclass
class Plan:
    seconds: float
    warmup: float
    raw_seconds: float
    clients: int
    profile: Path | None
    fill_to: int = 0  # events accepted in all before the RSS is read (0: what the window sent)


# ----------------------------------------------------------------------------- catalog


async def seed_catalog(database_url: str) -> list[str]:
    """Five customers with an alias each and three metrics; the refs events may use."""
    db = Database(database_url)
    now = datetime.now(UTC)
    exists = (PropertyFilter(name="bytes", exists=True), PropertyFilter(name="region", exists=True))
    metrics = [
        MetricDefinition(id="", name="Requests", aggregation_type=AggregationType.COUNT),
        MetricDefinition(
            id="",
            name="Bytes by region",
            aggregation_type=AggregationType.SUM,
            property_filters=exists,
            aggregation_key="bytes",
            group_keys=(("region",),),
        ),
        MetricDefinition(
            id="",
            name="Active users",
            aggregation_type=AggregationType.UNIQUE,
            property_filters=(PropertyFilter(name="user_id", exists=True),),
            aggregation_key="user_id",
        ),
    ]
    refs = []
    try:
        async with db.write() as conn:
            org_id = await get_or_create_organization(conn, "bench", now)
            for n in range(CUSTOMERS):
                alias = f"bench-alias-{n}"
                customer_id = await create_customer(
                    conn, org_id, f"Customer {n}", now, ingest_aliases=[alias]
                )
                refs += [customer_id, alias]
            for metric in metrics:
                await create_metric(conn, org_id, metric, now)
    finally:
        await db.dispose()
    return refs


# ----------------------------------------------------------------------------- backends


def run_backend(
    name: str, plan: Plan, workdir: Path, postgres_url: str | None, redis_url: str | None
) -> BackendResult:
    with backend_urls(workdir, postgres_url, redis_url) as (database_url, app_redis_url):
        extra = {"METERLINE_RUN_WORKER_IN_PROCESS": "true"} if postgres_url is None else {}
        env = clean_env(DATABASE_URL=database_url, REDIS_URL=app_redis_url, **extra)
        load_before = os.getloadavg()[0]
        log.print(f"[bold]{name}[/]: migrate, key, catalog …")
        meterline(["migrate"], env, workdir)
        key = meterline(["keys", "create", "--org", "bench", "--scope", "ingest"], env, workdir)
        key = key.strip().splitlines()[-1]
        refs = asyncio.run(seed_catalog(database_url))
        with server(env, workdir) as (process, base):
            start_memory = memory_mb(process.pid)
            fill = f", then on to {plan.fill_to:,} events for the RSS" if plan.fill_to else ""
            log.print(
                f"{name}: server pid {process.pid}; {plan.clients} clients, "
                f"{plan.warmup:.0f} s warm-up + {plan.seconds:.0f} s measured{fill} …"
            )
            profile = plan.profile / f"ingest-{name.lower()}.svg" if plan.profile else None
            with py_spy(process.pid, plan.warmup + plan.seconds, profile):
                api = asyncio.run(
                    run_load(
                        base,
                        key,
                        refs,
                        seconds=plan.seconds,
                        warmup=plan.warmup,
                        clients=plan.clients,
                        pid=process.pid,
                        fill_to=plan.fill_to,
                    )
                )
            memory = memory_mb(process.pid)
        problems, sample = scan_server_log(workdir / "server.log")
        raw: dict[str, float] = {}
        if plan.raw_seconds > 0:
            log.print(f"{name}: raw insert limit into usage_events …")
            if postgres_url is None:
                db_path = Path(make_url(database_url).database or "")
                raw["sqlite3, 1 conn"] = raw_limits.sqlite_insert_rate(
                    db_path, plan.raw_seconds, "usage_events", create=False
                )
            else:
                dsn = asyncpg_dsn(database_url)
                for n in (1, min(plan.clients, 8)):
                    rate = raw_limits.postgres_insert_rate(
                        dsn, plan.raw_seconds, n, table="usage_events", create=False
                    )
                    raw[f"asyncpg, {n} conn{'s' * (n > 1)}"] = asyncio.run(rate)
        return BackendResult(
            name,
            api,
            raw,
            problems,
            sample,
            load_before,
            rss_start_mb=start_memory[0] if start_memory else None,
            rss_mb=memory[0] if memory else None,
            rss_peak_mb=memory[1] if memory else None,
        )


# ----------------------------------------------------------------------------- report


def render(results: list[BackendResult], plan: Plan) -> None:
    table = Table(
        title=f"POST /v1/ingest, batches of {BATCH}, {plan.clients} clients, "
        f"{plan.seconds:.0f} s measured (server + load generator on {os.cpu_count()} cores)"
    )
    for column in ("backend", "figure", "value", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in results:
        api, target = r.api, TARGETS[r.name]
        best_raw = max(r.raw.values(), default=0.0)
        errors = sum(api.errors.values())
        cpu = "" if api.server_cpu is None else f"server CPU {api.server_cpu:.0%} of a core, "
        rows = [
            ("API events/s (sustained)", f"{api.rate:,.0f}", f"{api.requests:,} requests ok"),
            ("slowest 1 s slice, events", f"{api.slowest_second:,}", ""),
            ("latency p50 / p99", f"{api.percentile(0.5):.0f} / {api.percentile(0.99):.0f} ms", ""),
            (
                "errors",
                f"{errors:,}",
                ", ".join(f"{k}: {v}" for k, v in api.errors.most_common()) or "none",
            ),
            (
                "server log problems",
                f"{sum(r.server_problems.values()):,}",
                ", ".join(f"{k!r}: {v}" for k, v in r.server_problems.items()) or "none",
            ),
            (
                "CPU",
                "",
                f"{cpu}load generator {api.client_cpu or 0:.0%} of a core",
            ),
            *(
                (f"raw insert rows/s ({k})", f"{v:,.0f}", "usage_events, 100/tx")
                for k, v in r.raw.items()
            ),
            (
                "machine load before the run",
                f"{r.load_before:.2f}",
                "1-min load average; above ~0.3 other work competes for the cores",
            ),
            (
                "ratio API ÷ raw",
                f"{api.rate / best_raw:.1%}" if best_raw else "-",
                "against the best raw figure",
            ),
            (
                "server RSS at start / end / peak",
                " / ".join("-" if v is None else f"{v:.0f}" for v in r.memory) + " MiB",
                f"after {api.total_events:,} events accepted in all",
            ),
            (
                "target",
                f"{target:,}",
                "[green]met[/]" if api.rate >= target and not errors else "[red]not met[/]",
            ),
        ]
        for i, (figure, value, note) in enumerate(rows):
            table.add_row(
                r.name if i == 0 else "", figure, value, note, end_section=i == len(rows) - 1
            )
    out.print(table)
    for r in results:
        for line in r.server_log_sample:
            log.print(f"[dim]{r.name} server log:[/] {line}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s in all)")
    parser.add_argument("--seconds", type=float, help="measured seconds per backend")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections")
    parser.add_argument("--profile", type=Path, help="write py-spy flame graphs here")
    parser.add_argument(
        "--fill-to", type=int, default=0, help="go on until N events in all, then read the RSS"
    )
    add_backend_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    plan = Plan(
        seconds=args.seconds or (5.0 if args.quick else 20.0),
        warmup=1.0 if args.quick else 3.0,
        raw_seconds=2.0 if args.quick else 5.0,
        clients=args.clients,
        profile=args.profile,
        fill_to=args.fill_to,
    )
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    results = []
    for name, postgres_url in selected_backends(args):
        workdir = Path(tempfile.mkdtemp(prefix=f"meterline-bench-{name.lower()}-"))
        try:
            results.append(run_backend(name, plan, workdir, postgres_url, args.redis_url))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    render(results, plan)


if __name__ == "__main__":
    main()
