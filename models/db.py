"""The database: engines, sessions and the unit of work.

SQLite (default, embedded) and PostgreSQL run the same code. On SQLite, write units of work
begin with ``BEGIN IMMEDIATE`` (one writer at a time, no lock upgrades that deadlock) in WAL
mode; reads use a separate engine with deferred transactions so they never queue behind
writers.

Reaching the database is bounded: a unit of work gets its connection within
``pool_timeout`` (a free pooled connection; on SQLite, this process' writer turn) plus
``connect_timeout`` (opening a connection, checking a pooled one still answers; on SQLite,
another process' lock), never more than their sum; a statement then runs for at most the
statement timeout (PostgreSQL). A database that cannot be reached, drops the connection or
stops answering raises :class:`DatabaseUnavailable` (the API answers 503); a connection
found dead is discarded with every older one, so the next unit of work reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_only

from models.sqlite_decimal import DecimalConnection
from models.writer_queue import WriterQueue

CONNECT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 5
"""What a refusal for an unavailable database tells the client to wait (``Retry-After``)."""

log = logging.getLogger("meterline.db")


class DatabaseUnavailable(Exception):
    """The database could not be reached, dropped the connection or stopped answering in
    time: nothing of the unit of work is known to be done, and it may be retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database is unavailable ({reason}); retry shortly")
        self.reason = reason


# SQLite's primary result codes that mean the file cannot be used now (not a bad statement)
_SQLITE_UNAVAILABLE = {
    3: "permission denied",  # SQLITE_PERM
    5: "the database is locked by another writer",  # SQLITE_BUSY
    6: "a table is locked",  # SQLITE_LOCKED
    8: "the database is read-only",  # SQLITE_READONLY
    10: "disk I/O error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
    15: "the database lock protocol failed",  # SQLITE_PROTOCOL
}
_DRIVERS = ("sqlalchemy.", "asyncpg.", "aiosqlite.", "sqlite3")


def unavailability(error: BaseException) -> str | None:
    """Why ``error`` means the database is out of reach (connection refused or lost, no
    answer in time, locked or unreadable file), or None for any other failure."""
    return next((reason for cause in _causes(error) if (reason := _reason(cause))), None)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it wraps (SQLAlchemy's ``orig``, else ``__cause__``), once each."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__


def _reason(error: BaseException) -> str | None:
    if isinstance(error, DatabaseUnavailable):
        return error.reason
    if isinstance(error, exc.TimeoutError):
        return "no pooled connection came free in time"
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return "the connection was lost"
    sqlstate = getattr(error, "sqlstate", None)  # asyncpg's server and connection errors
    if isinstance(sqlstate, str):
        if sqlstate.startswith("08"):
            return "the connection was lost"
        if sqlstate == "57014":
            return "a statement ran past the statement timeout"
        if sqlstate.startswith(("57P", "53")):
            return "the server cannot serve (shutting down, starting up or out of resources)"
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return _SQLITE_UNAVAILABLE.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(error, TimeoutError):
        return "the database did not answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return f"network error: {error.strerror or type(error).__name__}"
    return None


def _timed_out(error: BaseException) -> bool:
    return any(isinstance(cause, TimeoutError) for cause in _causes(error))


def _raised_by_driver(error: BaseException) -> bool:
    """Whether ``error`` was raised within the database layers (not by other code the unit
    of work awaited): plain timeouts and socket errors are the database's only then."""
    if isinstance(error, exc.SQLAlchemyError | sqlite3.Error):
        return True
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith(_DRIVERS):
            return True
        traceback = traceback.tb_next
    return False


def normalize_url(url: str) -> str:
    """Give plain ``sqlite://`` / ``postgresql://`` URLs their async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, immediate: bool, busy_timeout: float) -> AsyncEngine:
    busy_ms = max(1, round(busy_timeout * 1000))
    engine = create_async_engine(
        url,
        connect_args={"factory": DecimalConnection, "timeout": busy_timeout},
        pool_size=5 if immediate else 10,
        max_overflow=0,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(
    url: str, *, statement_timeout_ms: int, connect_timeout: float, pool_timeout: float
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_timeout=pool_timeout,
        connect_args={
            "timeout": connect_timeout,
            "command_timeout": statement_timeout_ms / 1000,
            "server_settings": {"statement_timeout": str(statement_timeout_ms)},
        },
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def _answers(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        """A pre-ping bounded by the connect timeout (SQLAlchemy's waits as long as any
        statement): a connection that does not answer is dropped with every older one
        (the server was likely restarted or is out of reach), and the pool reconnects."""
        driver = dbapi_connection.driver_connection
        try:
            await_only(driver.fetchrow(";", timeout=connect_timeout))
        except Exception as error:
            driver.terminate()
            raise exc.InvalidatePoolError(
                f"the pooled connection did not answer: {error!r}"
            ) from error

    return engine


class Database:
    """Owns the engines; ``write()`` and ``read()`` are the only ways to reach SQL."""

    def __init__(
        self,
        url: str,
        *,
        statement_timeout_ms: int = 30_000,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        pool_timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.connect_timeout, self.pool_timeout = connect_timeout, pool_timeout
        self._writers: WriterQueue | None = None
        if self.dialect == "sqlite":
            self._writers = WriterQueue()
            self._writer = _sqlite_engine(self.url, immediate=True, busy_timeout=connect_timeout)
            self._reader = _sqlite_engine(self.url, immediate=False, busy_timeout=connect_timeout)
        else:
            self._writer = _postgres_engine(
                self.url,
                statement_timeout_ms=statement_timeout_ms,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )
            self._reader = self._writer

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A unit of work: commits when the block ends, rolls back on error. ``urgent``
        (jobs that notify) goes before queued ordinary writers on SQLite."""
        turn = self._writers.turn(urgent=urgent) if self._writers else None
        async with self._reached(self._writer.begin, turn) as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._reached(self._reader.connect) as connection:
            yield connection
            await connection.rollback()

    @asynccontextmanager
    async def _reached(
        self,
        open_connection: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        turn: AbstractAsyncContextManager[None] | None = None,
    ) -> AsyncIterator[AsyncConnection]:
        """A connection got within the bound, for the block; raises DatabaseUnavailable
        when it cannot be had in time, or the database is lost or stops answering during
        the block (any failure to get the connection counts: no code of ours runs there)."""
        connected = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout(self.pool_timeout + self.connect_timeout):
                    if turn is not None:
                        async with asyncio.timeout(self.pool_timeout):
                            await stack.enter_async_context(turn)
                    connection = await stack.enter_async_context(open_connection())
                connected = True
                try:
                    yield connection
                except Exception as error:
                    if _timed_out(error) and _raised_by_driver(error):
                        # no answer to a statement: the connection is in an unknown
                        # state, and a rollback on it would wait as long again
                        await connection.invalidate(error)
                    raise
        except DatabaseUnavailable:
            raise
        except Exception as error:
            reason = unavailability(error) if not connected or _raised_by_driver(error) else None
            if reason is None and not connected:
                reason = f"cannot connect: {type(error).__name__}"
            if reason is None:
                raise
            log.warning("database unavailable: %s (%r)", reason, error)
            raise DatabaseUnavailable(reason) from error

    async def ping(self) -> None:
        async with self.read() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()
