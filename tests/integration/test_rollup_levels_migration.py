"""Migration 0004 computes the day and month rollups of a database that holds only hourly
ones, so an upgraded database reads exactly as one filled after the upgrade; its downgrade
returns to hourly rows only, and the cycle changes no window.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from billing.metering import UsageEvent
from models.db import Database
from models.migrate import alembic_config, upgrade
from models.store.customers import create_customer
from models.store.ingest import record_batch
from models.store.metrics import create_metric
from models.store.organizations import get_or_create_organization
from models.store.rollup_reads import window_partials_many
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.integration.support import comparable, metric_definition, recompute, with_id

NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)
WINDOWS = [
    (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
    (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
    (datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 3, tzinfo=UTC)),
    (datetime(2026, 3, 30, 5, 17, tzinfo=UTC), datetime(2026, 4, 9, 22, 3, tzinfo=UTC)),
]


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A private, migrated database: the test moves its schema up and down."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'levels.db'}")
        await upgrade(db)
        yield db
        await db.dispose()
        return
    assert POSTGRES_URL is not None
    server = make_url(Database(POSTGRES_URL).url)
    name = f"meterline_levels_{secrets.token_hex(4)}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(server.set(database=name).render_as_string(hide_password=False))
    try:
        await upgrade(db)
        yield db
    finally:
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def downgrade(db: Database, revision: str) -> None:
    async with db.write() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))


async def grains(db: Database) -> dict[int, int]:
    async with db.read() as conn:
        rows = await conn.execute(text("SELECT grain, COUNT(*) FROM usage_rollups GROUP BY grain"))
        return {int(grain): int(count) for grain, count in rows}


async def test_upgrade_computes_day_and_month_levels_from_hourly_rows(database: Database) -> None:
    definitions = [
        metric_definition("Calls", "count", group_keys=[["region"]]),
        metric_definition("Tokens", "sum", key="value", group_keys=[["region"]]),
        metric_definition("Peak", "max", key="value"),
        metric_definition("Users", "unique", key="user", group_keys=[["region"]]),
        metric_definition("Gauge", "latest", key="value", group_keys=[["region"]]),
    ]
    async with database.write() as conn:
        org_id = await get_or_create_organization(conn, "Levels", NOW)
        metrics = [with_id(m, await create_metric(conn, org_id, m, NOW)) for m in definitions]
        customer_id = await create_customer(conn, org_id, "Levels", NOW, ingest_aliases=["lv"])
    events = [
        UsageEvent(
            transaction_id=f"t{i:03d}",
            customer_id="lv",
            event_type="call",
            # every 5 h 7 min from 2026-03-25: crosses days and the month boundary;
            # equal timestamps (i, i + 1) make the latest tie break on transaction id
            timestamp=datetime(2026, 3, 25, tzinfo=UTC) + timedelta(minutes=307 * (i // 2)),
            properties={
                "region": ["eu", "us", "é"][i % 3],
                "value": str((i * 37) % 101 - 20),
                "user": f"u{i % 7}",
            },
        )
        for i in range(160)
    ]
    for start in range(0, len(events), 50):
        async with database.write() as conn:
            batch = list(enumerate(events[start : start + 50]))
            await record_batch(conn, org_id, batch, NOW)
    requests = [(customer_id, start, end) for start, end in WINDOWS]

    async def windows() -> list:
        async with database.read() as conn:
            found = await window_partials_many(conn, org_id, requests, metrics)
        return [
            comparable(metrics, {metric_id: dict(p) for metric_id, p in result.items()})
            for result in found
        ]

    want = [comparable(metrics, recompute(events, metrics, s, e)) for s, e in WINDOWS]
    assert await windows() == want
    filled = await grains(database)
    assert set(filled) == {0, 1, 2}

    await downgrade(database, "0003")
    async with database.read() as conn:
        hourly = (await conn.execute(text("SELECT COUNT(*) FROM usage_rollups"))).scalar()
    assert hourly == filled[0]

    await upgrade(database)
    assert await grains(database) == filled
    assert await windows() == want
