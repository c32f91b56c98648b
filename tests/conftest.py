"""Fixtures: every storage test runs on SQLite + embedded Redis, and also on PostgreSQL +
Redis when METERLINE_TEST_POSTGRES_URL / METERLINE_TEST_REDIS_URL are set."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette

from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.embedded_redis import EmbeddedRedis
from meterline.settings import Settings
from models.db import Database
from models.migrate import upgrade
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from models.tables import metadata
from tests.figures import (  # noqa: F401  (hooks: the fault and fuzz figures, end of run)
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)
from workers.context import WebhookPolicy
from workers.finalize import finalize_invoices
from workers.lifecycle import lifecycle_scheduler
from workers.worker import build_worker

POSTGRES_URL = os.environ.get("METERLINE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("METERLINE_TEST_REDIS_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL and REDIS_URL else [])
START = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    asyncio.run(_migrate_and_dispose(db))
    return path


async def _migrate_and_dispose(db: Database) -> None:
    try:
        await upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A private database for this test session (parallel sessions never collide)."""
    assert POSTGRES_URL is not None
    server = make_url(Database(POSTGRES_URL).url)
    name = f"meterline_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_migrate_and_dispose(Database(url)))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def session_redis_url() -> str:
    """The shared Redis, on a database number of this session's own (1-15): an xdist
    worker's by its number, else this process'."""
    assert REDIS_URL is not None
    base = REDIS_URL.split("?", 1)[0].rstrip("/")
    if base.count("/") > 2:
        base = base.rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = int(worker[2:]) if worker.startswith("gw") else os.getpid()
    return f"{base}/{number % 15 + 1}"


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "meterline.db")
        url = f"sqlite+aiosqlite:///{tmp_path / 'meterline.db'}"
        redis_url = request.getfixturevalue("embedded_redis")
    else:
        url = request.getfixturevalue("postgres_migrated")
        redis_url = request.getfixturevalue("session_redis_url")
        asyncio.run(_truncate_all(url))
    redis_sync.Redis.from_url(redis_url).flushdb()
    yield Backend(request.param, url, redis_url)


async def _truncate_all(url: str) -> None:
    db = Database(url)
    names = ", ".join(table.name for table in metadata.sorted_tables)
    async with db.write() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await db.dispose()


@dataclass
class Env:
    """A running app (lifespan entered) with one organization and its keys."""

    backend: Backend
    clock: FixedClock
    client: httpx.AsyncClient
    db: Database
    redis: ArqRedis
    org_id: str
    admin_key: str
    ingest_key: str
    read_key: str
    app: Starlette
    """The app behind ``client`` (its lifespan entered), to serve over a real socket."""
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)

    def write(self) -> Any:
        return self.db.write()

    def read(self) -> Any:
        return self.db.read()

    async def ingest(self, events: list[dict[str, Any]], key: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.ingest_key}"}
        return await self.client.post("/v1/ingest", json=events, headers=headers)

    async def run_jobs(self) -> None:
        """Run every job that is due to completion at the clock's time: the finalizer and
        the lifecycle scheduler (the crons), then every queued job (an ARQ worker in burst
        mode, which returns once the queue is empty)."""
        worker = build_worker(
            self.redis,
            self.db,
            self.clock,
            handle_signals=False,
            burst=True,
            webhooks=self.webhooks,
        )
        ctx = {**worker.ctx, "redis": self.redis}
        await finalize_invoices(ctx)
        await lifecycle_scheduler(ctx)
        await worker.main()

    async def new_org(self, name: str) -> tuple[str, str]:
        """A second organization with an admin+ingest key: (org_id, key)."""
        async with self.write() as conn:
            org_id = await get_or_create_organization(conn, name, self.clock())
            _, key = await create_api_key(conn, org_id, ["admin", "ingest"], self.clock())
        return org_id, key


@pytest.fixture
async def env(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """The app on ``backend``; a test's ``@pytest.mark.settings(name=value, …)`` changes
    those settings."""
    clock = FixedClock(START)
    marker = request.node.get_closest_marker("settings")
    # webhooks may go to test receivers on this machine, named "localhost" (tests of the
    # SSRF guard use IP literals, which stay refused)
    settings = Settings(
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        webhook_allowed_private_hosts=["localhost"],
        **(marker.kwargs if marker else {}),
    )
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        services = app.state.services
        async with services.db.write() as conn:
            org_id = await get_or_create_organization(conn, "Acme", clock())
            keys = [
                (await create_api_key(conn, org_id, scopes, clock()))[1]
                for scopes in (["admin"], ["ingest"], ["read"])
            ]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield Env(
                backend,
                clock,
                client,
                services.db,
                services.redis,
                org_id,
                *keys,
                app=app,
                webhooks=settings.webhook_policy(),
            )
