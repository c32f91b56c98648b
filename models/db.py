"""The database: engines, sessions and the unit of work.

SQLite (default, embedded) and PostgreSQL run the same code. On SQLite, write units of work
begin with ``BEGIN IMMEDIATE`` (one writer at a time, no lock upgrades that deadlock) in WAL
mode; reads use a separate engine with deferred transactions so they never queue behind
writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from models.sqlite_decimal import DecimalConnection
from models.writer_queue import WriterQueue

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Give plain ``sqlite://`` / ``postgresql://`` URLs their async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"factory": DecimalConnection, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=5 if immediate else 10,
        max_overflow=0,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Owns the engines; ``write()`` and ``read()`` are the only ways to reach SQL."""

    def __init__(self, url: str, *, statement_timeout_ms: int = 30_000) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self._writers: WriterQueue | None = None
        if self.dialect == "sqlite":
            self._writers = WriterQueue()
            self._writer = _sqlite_engine(self.url, immediate=True)
            self._reader = _sqlite_engine(self.url, immediate=False)
        else:
            self._writer = create_async_engine(
                self.url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                connect_args={
                    "timeout": 10,
                    "command_timeout": statement_timeout_ms / 1000,
                    "server_settings": {"statement_timeout": str(statement_timeout_ms)},
                },
            )
            self._reader = self._writer

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A unit of work: commits when the block ends, rolls back on error. ``urgent``
        (jobs that notify) goes before queued ordinary writers on SQLite."""
        turn = self._writers.turn(urgent=urgent) if self._writers else contextlib.nullcontext()
        async with turn, self._writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reader.connect() as connection:
            yield connection
            await connection.rollback()

    async def ping(self) -> None:
        async with self.read() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
