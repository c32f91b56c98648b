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

PostgreSQL gets a private ``bench_<random>`` database created through the server of
``--postgres-url`` and dropped at the end; Redis is only used as the application's job
queue/pub-sub. Every process and temporary file is removed at the end, also on Ctrl-C.

    python bench/ingest.py [--quick] [--seconds N] [--clients N]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/0] [--profile DIR]

``--profile DIR`` attaches ``py-spy record`` to the server during the measured window and
writes a flame graph per backend there (its sampling slows the server: figures of a
profiled run are not the benchmark's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from backends import (  # bench/ is on sys.path
    add_backend_args,
    asyncpg_dsn,
    backend_urls,
    selected_backends,
)
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from billing.metering import AggregationType, MetricDefinition, PropertyFilter
from models.db import Database
from models.store.customers import create_customer
from models.store.metrics import create_metric
from models.store.organizations import get_or_create_organization

BATCH = 100
TARGETS = {"SQLite": 50_000, "PostgreSQL": 30_000}
CUSTOMERS = 5
REGIONS = ("eu-west", "us-east", "us-west", "ap-south")
USERS = 1_000
SPREAD = timedelta(hours=6)
METERLINE = [sys.executable, "-m", "meterline.cli"]
UVICORN = [sys.executable, "-m", "uvicorn", "meterline.app:create_app", "--factory"]
EXPLAINS = ("Error", "Exception:", "HINT", "[SQL:", "locked")
SERVER_PROBLEMS = ("Traceback", "database is locked", '" 500', "Exception", "ERROR")

out = Console(width=max(110, Console().width))
log = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class LoadResult:
    seconds: float = 0.0
    requests: int = 0
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    per_second: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float | None = None
    client_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def slowest_second(self) -> int:
        slices = [self.per_second.get(s, 0) for s in range(int(self.seconds))]
        return min(slices) if slices else 0


@dataclass
class BackendResult:
    name: str
    api: LoadResult
    raw: dict[str, float]
    server_problems: Counter[str]
    server_log_sample: list[str]
    load_before: float


@dataclass
class Plan:
    seconds: float
    warmup: float
    raw_seconds: float
    clients: int
    profile: Path | None


# ----------------------------------------------------------------------------- processes


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any Meterline configuration, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("METERLINE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(extra)
    return env


def meterline(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [*METERLINE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"meterline {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM (uvicorn's graceful shutdown runs the lifespan), then SIGKILL its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def server(env: dict[str, str], workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A uvicorn process running the app, ready (``/readyz`` is 200) when entered."""
    port = free_port()
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*UVICORN, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server never became ready:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield process, base
    finally:
        stop(process)


@contextlib.contextmanager
def py_spy(pid: int, seconds: float, output: Path | None) -> Iterator[None]:
    if output is None or shutil.which("py-spy") is None:
        if output is not None:
            log.print("[yellow]py-spy is not installed (pip install py-spy): no profile[/]")
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds))]
    recorders = [
        subprocess.Popen(
            [*command, "--nonblocking", "--format", fmt, "--output", str(target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, target in (("flamegraph", output), ("raw", output.with_suffix(".txt")))
    ]
    try:
        yield
    finally:
        for recorder in recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        log.print(f"profile written to {output} (flame graph) and .txt (collapsed stacks)")


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


# ----------------------------------------------------------------------------- load


class Batches:
    """Bodies of 100 events: unique transaction ids, a handful of customers and groups."""

    def __init__(self, refs: list[str]) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        step = SPREAD / 3600
        self.timestamps = [
            (now - SPREAD + step * i).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(3600)
        ]
        self.refs = refs
        self.run = secrets.token_hex(4)
        self.users = [f"user-{n}" for n in range(USERS)]

    def body(self, client: int, seq: int) -> bytes:
        choice, randint = random.choice, random.randint
        prefix = f"{self.run}-{client}-{seq}-"
        return orjson.dumps(
            [
                {
                    "transaction_id": f"{prefix}{i}",
                    "customer_id": choice(self.refs),
                    "event_type": "request",
                    "timestamp": choice(self.timestamps),
                    "properties": {
                        "region": choice(REGIONS),
                        "bytes": randint(1, 100_000),
                        "user_id": choice(self.users),
                    },
                }
                for i in range(BATCH)
            ]
        )


def judge(response: httpx.Response) -> str | None:
    """None if the batch was fully accepted, else a short error label."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    report = response.json()
    if report.get("accepted") != BATCH:
        return f"accepted {report.get('accepted')} of {BATCH}"
    if report.get("warnings") or report.get("rejected") or report.get("duplicates"):
        return "warnings/rejections in report"
    return None


async def run_load(base: str, key: str, refs: list[str], plan: Plan, pid: int) -> LoadResult:
    batches = Batches(refs)
    result = LoadResult()
    start = time.monotonic()
    window_start = start + plan.warmup
    window_end = window_start + plan.seconds
    marks: dict[str, tuple[float | None, float]] = {}

    async def mark(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        marks[name] = (cpu_seconds(pid), time.process_time())

    async def client(n: int) -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60
        ) as http:
            seq = 0
            while time.monotonic() < window_end:
                body = batches.body(n, seq)
                seq += 1
                sent = time.monotonic()
                try:
                    error = judge(await http.post("/v1/ingest", content=body))
                except httpx.HTTPError as failure:
                    error = type(failure).__name__
                done = time.monotonic()
                if error is not None:
                    result.errors[error] += 1
                elif window_start <= done < window_end:
                    result.requests += 1
                    result.events += BATCH
                    result.latencies.append(done - sent)
                    result.per_second[int(done - window_start)] += BATCH

    await asyncio.gather(
        mark("start", window_start),
        mark("end", window_end),
        *(client(n) for n in range(plan.clients)),
    )
    result.seconds = plan.seconds
    (server_a, client_a), (server_b, client_b) = marks["start"], marks["end"]
    if server_a is not None and server_b is not None:
        result.server_cpu = (server_b - server_a) / plan.seconds
    result.client_cpu = (client_b - client_a) / plan.seconds
    return result


def scan_server_log(path: Path) -> tuple[Counter[str], list[str]]:
    """Problem lines counted by kind, and the first traceback (or problem lines) in full."""
    problems: Counter[str] = Counter()
    sample: list[str] = []
    lines = path.read_text(errors="replace").splitlines()
    for n, line in enumerate(lines):
        hits = [p for p in SERVER_PROBLEMS if p in line]
        for hit in hits:
            problems[hit] += 1
        if hits and not sample:
            block = lines[n : n + 400]
            end = next((i for i, x in enumerate(block[1:], 1) if x.startswith("INFO:")), None)
            sample = [x[:300] for x in block[:end] if any(w in x for w in EXPLAINS)][:12]
    return problems, sample


# ----------------------------------------------------------------------------- raw limits


def raw_rows(tag: str, seq: int, now: datetime) -> list[tuple[Any, ...]]:
    properties = json.dumps({"region": "eu-west", "bytes": "1234", "user_id": "user-7"})
    return [
        (
            "bench-raw",
            f"{tag}-{seq}-{i}",
            "bench-alias-0",
            "cus_raw",
            "request",
            now - timedelta(seconds=i),
            properties,
            now,
        )
        for i in range(BATCH)
    ]


RAW_COLUMNS = (
    "org_id, transaction_id, customer_ref, customer_id, event_type, timestamp, properties, "
    "received_at"
)


def raw_sqlite(path: Path, seconds: float) -> float:
    """Rows/s: plain executemany, 100 rows per transaction, WAL + synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = f"INSERT INTO usage_events ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        now, rows, seq = datetime.now(UTC).replace(tzinfo=None), 0, 0
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            batch = [
                (*row[:5], row[5].isoformat(" "), row[6], row[7].isoformat(" "))
                for row in raw_rows("raw", seq, now)
            ]
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            rows, seq = rows + BATCH, seq + 1
        return rows / elapsed
    finally:
        conn.close()


async def raw_postgres(dsn: str, seconds: float, connections: int) -> float:
    """Rows/s: asyncpg executemany, 100 rows per transaction, ``connections`` at once."""
    sql = f"INSERT INTO usage_events ({RAW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    now = datetime.now(UTC).replace(tzinfo=None)
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    total = 0
    try:
        start = time.monotonic()

        async def writer(n: int, conn: asyncpg.Connection) -> None:
            nonlocal total
            seq = 0
            while time.monotonic() - start < seconds:
                async with conn.transaction():
                    await conn.executemany(sql, raw_rows(f"raw{connections}-{n}", seq, now))
                total, seq = total + BATCH, seq + 1

        await asyncio.gather(*(writer(n, c) for n, c in enumerate(conns)))
        return total / (time.monotonic() - start)
    finally:
        for conn in conns:
            await conn.close()


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
            log.print(
                f"{name}: server pid {process.pid}; {plan.clients} clients, "
                f"{plan.warmup:.0f} s warm-up + {plan.seconds:.0f} s measured …"
            )
            profile = plan.profile / f"ingest-{name.lower()}.svg" if plan.profile else None
            with py_spy(process.pid, plan.warmup + plan.seconds, profile):
                api = asyncio.run(run_load(base, key, refs, plan, process.pid))
        problems, sample = scan_server_log(workdir / "server.log")
        log.print(f"{name}: raw insert limit …")
        raw: dict[str, float] = {}
        if postgres_url is None:
            db_path = Path(make_url(database_url).database or "")
            raw["sqlite3, 1 conn"] = raw_sqlite(db_path, plan.raw_seconds)
        else:
            dsn = asyncpg_dsn(database_url)
            raw["asyncpg, 1 conn"] = asyncio.run(raw_postgres(dsn, plan.raw_seconds, 1))
            many = min(plan.clients, 8)
            raw[f"asyncpg, {many} conns"] = asyncio.run(raw_postgres(dsn, plan.raw_seconds, many))
        return BackendResult(name, api, raw, problems, sample, load_before)


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
        best_raw = max(r.raw.values())
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
            ("ratio API ÷ raw", f"{api.rate / best_raw:.1%}", "against the best raw figure"),
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
