"""Webhook deliveries/s to a local receiver, against the bare POST rate to the same receiver
(target of issue 8: ≥ 2,000 deliveries/s on this 2-core machine).

What one run measures, per backend (SQLite + embedded Redis always; PostgreSQL + Redis when
``--postgres-url`` and ``--redis-url`` are given):

1. **Layout** (production): a fresh database migrated with ``meterline migrate``; one
   organization with one webhook endpoint for ``customer.created`` pointing at the
   receiver, a separate uvicorn process serving ``bench/receiver_app.py`` (a bare ASGI app
   that answers 200 and counts arrivals).
2. **Messages**: ``--messages`` ``customer.created`` messages written through the
   transactional outbox (``notifications.outbox.Outbox.emit``, 500 per transaction, one
   pending delivery each), then ``Outbox.dispatch`` enqueues one ``deliver_webhook`` ARQ
   job per delivery: the path alert transitions, invoices and lifecycle events take.
3. **Delivery**: then ``--workers`` ``meterline worker`` processes start; a job leases its
   delivery and up to ``WebhookPolicy.batch`` - 1 other due ones in one transaction, signs
   them (svix), POSTs them with httpx on the process's sending slots
   (``WebhookPolicy.concurrency`` at once, one connection each), records the attempts in
   one transaction and withdraws the queued jobs of the others. The figure is arrivals at
   the receiver ÷ (last − first arrival); afterwards every delivery row must be
   ``succeeded`` and sampled signatures must verify.
4. **Raw limit**: the same receiver hit by bare httpx POSTs of a message body from as many
   processes as workers, each with 10 at once through one ``httpx.AsyncClient``: plain
   httpx without the database, Redis and signing (its pool costs grow with its connections,
   which the workers' one-connection slots avoid, so deliveries can beat this figure).

SQLite runs one worker by default (one writer at a time: a second process only adds lock
waits), PostgreSQL two (one per core). ``--in-process`` runs the worker inside an (idle)
API process instead, as ``meterline serve`` does with zero configuration.

    python bench/deliveries.py [--quick] [--messages N] [--workers N]
        [--postgres-url postgresql+asyncpg://…] [--redis-url redis://…] [--only sqlite|postgres]
        [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from arq.connections import RedisSettings, create_pool
from backends import add_backend_args, backend_urls, selected_backends
from harness import (
    BENCH,
    METERLINE,
    clean_env,
    cpu_seconds,
    log,
    meterline,
    scan_server_log,
    server,
    stop,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from svix.webhooks import Webhook

from models.db import Database
from models.store.organizations import get_or_create_organization
from models.store.webhook_endpoints import create_endpoint
from notifications.catalog import customer_created
from notifications.outbox import Outbox
from notifications.signing import new_secret

TARGET = 2_000
EVENT_TYPE = "customer.created"
PER_TRANSACTION = 500
JOBS_PER_WORKER = 10  # bare POSTs at once per process (ARQ's default max_jobs)
RECEIVER = [
    sys.executable,
    "-m",
    "uvicorn",
    "receiver_app:app",
    "--app-dir",
    str(BENCH),
    "--no-access-log",
]

out = Console(width=max(110, Console().width))


@dataclass
class Plan:
    messages: int = 5_000
    workers: int = 0  # 0: one on SQLite, two on PostgreSQL
    in_process: bool = False  # the worker inside an API process (zero-config layout)
    raw_seconds: float = 3.0
    timeout: float = 600.0


@dataclass
class Result:
    name: str
    plan: Plan
    delivered: int = 0
    seconds: float = 0.0  # first → last arrival
    since_start: float = 0.0  # workers started → last arrival
    write_rate: float = 0.0  # messages/s through Outbox.emit + commit
    enqueue_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    verified: int = 0
    raw_rate: float = 0.0
    raw_errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    problems: int = 0
    load_before: float = 0.0

    @property
    def rate(self) -> float:
        return (self.delivered - 1) / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- setup


async def write_messages(
    database_url: str, redis_url: str, receiver_url: str, count: int
) -> tuple[str, float, float]:
    """The endpoint and ``count`` messages through the outbox, then their jobs enqueued:
    (the endpoint's secret, messages/s written, seconds to enqueue)."""
    db = Database(database_url)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        now = datetime.now(UTC)
        secret = new_secret()
        async with db.write() as conn:
            org_id = await get_or_create_organization(conn, "bench-deliveries", now)
            await create_endpoint(
                conn,
                org_id,
                url=receiver_url,
                event_types=[EVENT_TYPE],
                description="bench receiver",
                secret=secret,
                now=now,
            )
        outbox = Outbox()
        started = time.perf_counter()
        for first in range(0, count, PER_TRANSACTION):
            async with db.write() as conn:
                for n in range(first, min(count, first + PER_TRANSACTION)):
                    event = customer_created(f"cus_bench_{n:07d}", f"Customer {n}")
                    await outbox.emit(conn, org_id, event, now)
        written = time.perf_counter() - started
        started = time.perf_counter()
        await outbox.dispatch(pool)
        return secret, count / written, time.perf_counter() - started
    finally:
        await pool.aclose()
        await db.dispose()


async def delivery_statuses(database_url: str) -> dict[str, int]:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                text("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status")
            )
            return {str(status): int(n) for status, n in rows}
    finally:
        await db.dispose()


@contextlib.contextmanager
def workers(
    env: dict[str, str], workdir: Path, count: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = []
    try:
        for n in range(count):
            with (workdir / f"worker-{n}.log").open("wb") as output:
                processes.append(
                    subprocess.Popen(
                        [*METERLINE, "worker"],
                        env=env,
                        cwd=workdir,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield processes
    finally:
        for process in processes:
            stop(process)


@contextlib.contextmanager
def in_process_worker(
    env: dict[str, str], workdir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The zero-configuration layout: the API process (idle here) runs the worker."""
    inside = {**env, "METERLINE_RUN_WORKER_IN_PROCESS": "true"}
    with server(inside, workdir, log_name="worker-0.log") as (process, _):
        yield [process]


# ----------------------------------------------------------------------------- measuring


async def raw_posts(url: str, body: bytes, concurrency: int, seconds: float) -> tuple[float, int]:
    """Bare POSTs/s to ``url``, ``concurrency`` at once, one process; and the errors."""
    done, errors = 0, 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.monotonic()

        async def poster() -> None:
            nonlocal done, errors
            while time.monotonic() - start < seconds:
                try:
                    response = await http.post(url, content=body)
                    response.raise_for_status()
                    done += 1
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(poster() for _ in range(concurrency)))
        return done / (time.monotonic() - start), errors


def _raw_process(url: str, body: bytes, concurrency: int, seconds: float) -> tuple[float, int]:
    return asyncio.run(raw_posts(url, body, concurrency, seconds))


def raw_limit(url: str, body: bytes, processes: int, seconds: float) -> tuple[float, int]:
    """Bare POSTs/s from ``processes`` processes (one per worker) of ``JOBS_PER_WORKER`` at
    once each, through one client per process."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        args = (url, body, JOBS_PER_WORKER, seconds)
        found = list(pool.map(_raw_process, *zip(*[args] * processes, strict=True)))
    return sum(rate for rate, _ in found), sum(errors for _, errors in found)


def stats(base: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/stats", timeout=10).json()
    return body


def run_backend(
    name: str, plan: Plan, workdir: Path, postgres_url: str | None, redis_url: str | None
) -> Result:
    if plan.in_process:
        plan = dataclasses.replace(plan, workers=1)
    elif not plan.workers:
        plan = dataclasses.replace(plan, workers=1 if postgres_url is None else 2)
    result = Result(name, plan, load_before=os.getloadavg()[0])
    with backend_urls(workdir, postgres_url, redis_url) as (database_url, app_redis_url):
        allowed = {"METERLINE_WEBHOOK_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]'}
        env = clean_env(DATABASE_URL=database_url, REDIS_URL=app_redis_url, **allowed)
        log.print(f"[bold]{name}[/]: migrate, receiver …")
        meterline(["migrate"], env, workdir)
        with server(clean_env(), workdir, RECEIVER, "receiver.log") as (_, receiver):
            log.print(f"{name}: {plan.messages:,} messages through the outbox …")
            secret, result.write_rate, result.enqueue_seconds = asyncio.run(
                write_messages(database_url, app_redis_url, f"{receiver}/hooks", plan.messages)
            )
            log.print(f"{name}: {plan.workers} worker process(es) delivering …")
            started = time.monotonic()
            running = (
                in_process_worker(env, workdir)
                if plan.in_process
                else workers(env, workdir, plan.workers)
            )
            with running as processes:
                before = {p.pid: cpu_seconds(p.pid) for p in processes}
                deadline = started + plan.timeout
                seen = stats(receiver)
                while seen["count"] < plan.messages and time.monotonic() < deadline:
                    if any(p.poll() is not None for p in processes):
                        raise RuntimeError(f"a worker exited; see {workdir}/worker-*.log")
                    time.sleep(0.1)
                    seen = stats(receiver)
                elapsed = time.monotonic() - started
                for n, p in enumerate(processes):
                    used, was = cpu_seconds(p.pid), before[p.pid]
                    if used is not None and was is not None:
                        result.cpu[f"worker {n}"] = (used - was) / elapsed
                settle = time.monotonic() + 30
                while time.monotonic() < settle:
                    result.statuses = asyncio.run(delivery_statuses(database_url))
                    if not result.statuses.get("pending"):
                        break
                    time.sleep(0.2)
            result.delivered = seen["count"]
            if seen["first"] is not None:
                result.seconds = seen["last"] - seen["first"]
                result.since_start = seen["last"] - started
            hook = Webhook(secret)
            for sample in seen["samples"]:
                hook.verify(sample["body"], sample["headers"])
                result.verified += 1
            body = seen["samples"][0]["body"].encode() if seen["samples"] else b"{}"
            httpx.post(f"{receiver}/reset", timeout=10)
            log.print(f"{name}: bare POSTs to the receiver …")
            result.raw_rate, result.raw_errors = raw_limit(
                f"{receiver}/raw", body, plan.workers, plan.raw_seconds
            )
        for n in range(plan.workers):
            problems, _ = scan_server_log(workdir / f"worker-{n}.log")
            result.problems += sum(problems.values())
    return result


# ----------------------------------------------------------------------------- report


def layout(plan: Plan) -> str:
    if plan.in_process:
        return "worker in the API process"
    return f"{plan.workers} worker process{'es' * (plan.workers > 1)}"


def render(results: list[Result]) -> None:
    for r in results:
        table = Table(
            title=f"{r.name}: webhook deliveries to a local receiver, {r.plan.messages:,} "
            f"messages, {layout(r.plan)} ({os.cpu_count()} cores)"
        )
        for column in ("figure", "value", "note"):
            table.add_column(column, justify="right" if column == "value" else "left")
        statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(r.statuses.items()))
        verdict = "[green]met[/]" if r.rate >= TARGET else "[red]not met[/]"
        rows = [
            (
                "deliveries/s",
                f"{r.rate:,.0f}",
                f"first → last arrival; target ≥ {TARGET:,}: {verdict}",
            ),
            (
                "deliveries/s incl. worker start",
                f"{r.delivered / r.since_start:,.0f}" if r.since_start else "-",
                "workers started → last arrival",
            ),
            ("arrived", f"{r.delivered:,}", f"delivery rows: {statuses}"),
            ("signatures verified", f"{r.verified}", "svix, sampled arrivals"),
            ("outbox write", f"{r.write_rate:,.0f} msg/s", "emit + commit, 500 per transaction"),
            ("enqueue", f"{r.enqueue_seconds:.1f} s", "Outbox.dispatch, one job per delivery"),
            (
                "raw: bare POSTs/s to the receiver",
                f"{r.raw_rate:,.0f}",
                f"httpx, {r.plan.workers} process(es) × {JOBS_PER_WORKER} at once; "
                f"errors {r.raw_errors}",
            ),
            (
                "ratio deliveries ÷ bare POSTs",
                f"{r.rate / r.raw_rate:.1%}" if r.raw_rate else "-",
                "",
            ),
            ("worker CPU", ", ".join(f"{k} {v:.0%}" for k, v in r.cpu.items()), "of a core"),
            ("worker log problems", f"{r.problems}", "tracebacks, errors"),
            ("machine load before", f"{r.load_before:.2f}", "1-min average"),
        ]
        for row in rows:
            table.add_row(*row)
        out.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    parser.add_argument("--messages", type=int, help="messages to deliver (default 5,000)")
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes (default: 1 SQLite, 2 PG)"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="the worker inside an API process"
    )
    add_backend_args(parser)
    args = parser.parse_args()
    plan = Plan(
        in_process=args.in_process,
        messages=args.messages or (1_000 if args.quick else 5_000),
        workers=args.workers,
        raw_seconds=2.0 if args.quick else 3.0,
    )
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    results = []
    for name, postgres_url in selected_backends(args):
        workdir = Path(tempfile.mkdtemp(prefix=f"meterline-deliveries-{name.lower()}-"))
        try:
            results.append(run_backend(name, plan, workdir, postgres_url, args.redis_url))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    render(results)


if __name__ == "__main__":
    main()
