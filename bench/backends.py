"""Backend plumbing shared by the benchmarks: which backends run, and their databases.

SQLite always runs, on a file in the run's work directory with an embedded Redis; PostgreSQL
runs when both ``--postgres-url`` and ``--redis-url`` are given, on a private database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from rich.console import Console
from sqlalchemy.engine import make_url

from meterline.embedded_redis import EmbeddedRedis
from models.db import Database

log = Console(stderr=True, highlight=False, soft_wrap=True)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def private_postgres(url: str) -> Iterator[str]:
    """A fresh ``bench_<random>`` database on the server of ``url``; dropped at the end."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = asyncpg_dsn(url)

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        parsed = make_url(Database(url).url).set(database=name)
        yield parsed.render_as_string(hide_password=False)
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def backend_urls(
    workdir: Path, postgres_url: str | None, redis_url: str | None
) -> Iterator[tuple[str, str]]:
    """``(database_url, redis_url)`` of one backend, torn down at the end.

    Without ``postgres_url``: SQLite in ``workdir/bench.db`` and an embedded Redis in
    ``workdir/redis``. With it: a private PostgreSQL database and ``redis_url``.
    """
    if postgres_url is None:
        database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        embedded = EmbeddedRedis(workdir / "redis")
        try:
            yield database_url, embedded.url
        finally:
            embedded.close()
    else:
        assert redis_url is not None
        with private_postgres(postgres_url) as database_url:
            yield database_url, redis_url


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """``--postgres-url``, ``--redis-url`` (defaults from the test environment) and ``--only``."""
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("METERLINE_TEST_POSTGRES_URL"),
        help="a PostgreSQL server (a private database is created there and dropped)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("METERLINE_TEST_REDIS_URL"))
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="run one backend")


def selected_backends(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(name, postgres_url)`` per backend to run; ``postgres_url`` is None for SQLite."""
    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres_url and args.redis_url:
        backends.append(("PostgreSQL", args.postgres_url))
    elif args.postgres_url or args.redis_url:
        log.print("[yellow]PostgreSQL needs both --postgres-url and --redis-url: skipped[/]")
    if args.only:
        backends = [b for b in backends if b[0].lower().startswith(args.only[:6])]
    return backends
