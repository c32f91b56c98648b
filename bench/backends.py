"""Database plumbing shared by the benchmarks: a private PostgreSQL database per run."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url

from models.db import Database


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
