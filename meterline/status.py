"""``meterline status``: what is owed and not yet done, read from the database and Redis
(the same figures as the ``/metrics`` gauges, plus which endpoints fail)."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from arq.connections import RedisSettings, create_pool
from rich.console import Console
from rich.table import Table

from meterline.settings import Settings
from models.store.health import (
    DisabledEndpoint,
    FailingEndpoint,
    backlog,
    failing_endpoints,
    recently_disabled_endpoints,
)
from notifications.queue import queue_depth

RECENT = timedelta(days=1)
REDIS_TIMEOUT = 5.0  # seconds


@dataclass(frozen=True)
class Status:
    """``queue_depth`` / ``queue_ready``: jobs in ARQ's queue (all, due now); None when
    Redis was not read, and ``queue_note`` says why."""

    checked_at: datetime
    queue_depth: int | None
    queue_ready: int | None
    queue_note: str | None
    outbox_backlog: int
    stripe_pushes_pending: int
    failing_endpoints: list[FailingEndpoint]
    disabled_endpoints: list[DisabledEndpoint]
    """Disabled in the last day (by the hub or a user)."""


EMBEDDED_REDIS = "embedded Redis: start the server to see the queue"


async def _queue(redis_url: str | None) -> tuple[int | None, int | None, str | None]:
    if not redis_url:
        return None, None, EMBEDDED_REDIS
    try:
        async with asyncio.timeout(REDIS_TIMEOUT):
            redis = dataclasses.replace(RedisSettings.from_dsn(redis_url), conn_retries=0)
            pool = await create_pool(redis)
            try:
                total, ready = await queue_depth(pool)
            finally:
                await pool.aclose()
    except Exception as error:  # the database figures are still worth printing
        return None, None, f"Redis unreachable: {type(error).__name__}: {error}"
    return total, ready, None


async def collect_status(settings: Settings, now: datetime | None = None) -> Status:
    """Read the status from ``settings``' database and Redis (``now``: the wall clock)."""
    now = now or datetime.now(UTC)
    db = settings.database()
    try:
        async with db.read() as conn:
            counts = await backlog(conn, now)
            failing = await failing_endpoints(conn)
            disabled = await recently_disabled_endpoints(conn, now - RECENT)
    finally:
        await db.dispose()
    total, ready, note = await _queue(settings.redis_url)
    return Status(
        checked_at=now,
        queue_depth=total,
        queue_ready=ready,
        queue_note=note,
        outbox_backlog=counts.outbox_due,
        stripe_pushes_pending=counts.stripe_pending,
        failing_endpoints=failing,
        disabled_endpoints=disabled,
    )


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def print_status(status: Status, console: Console) -> None:
    """The status as Rich tables: the backlog, then failing and recently disabled
    endpoints (with their organization)."""
    summary = Table(title=f"Meterline status at {_at(status.checked_at)}", show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    if status.queue_depth is None:
        summary.add_row("job queue", status.queue_note or "unknown")
    else:
        summary.add_row("job queue (all / due now)", f"{status.queue_depth} / {status.queue_ready}")
    summary.add_row("webhook deliveries due", str(status.outbox_backlog))
    summary.add_row("Stripe pushes pending", str(status.stripe_pushes_pending))
    summary.add_row("webhook endpoints failing", str(len(status.failing_endpoints)))
    summary.add_row("endpoints disabled (last day)", str(len(status.disabled_endpoints)))
    console.print(summary)
    if status.failing_endpoints:
        failing = Table(title="Failing webhook endpoints")
        for column in ("organization", "endpoint", "url", "failing since"):
            failing.add_column(column, overflow="fold")
        for found in status.failing_endpoints:
            failing.add_row(found.org_id, found.endpoint_id, found.url, _at(found.failing_since))
        console.print(failing)
    if status.disabled_endpoints:
        disabled = Table(title="Webhook endpoints disabled in the last day")
        for column in ("organization", "endpoint", "url", "disabled at", "reason"):
            disabled.add_column(column, overflow="fold")
        for gone in status.disabled_endpoints:
            disabled.add_row(
                gone.org_id, gone.endpoint_id, gone.url, _at(gone.disabled_at), gone.reason or ""
            )
        console.print(disabled)


def status_command() -> None:
    """Everything ``meterline status`` does: read the settings, collect, print."""
    print_status(asyncio.run(collect_status(Settings())), Console())
