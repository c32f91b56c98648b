"""``meterline status``: the backlog, failing and recently disabled endpoints, read from the
real database and Redis; printed as Rich tables."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from meterline.settings import Settings
from meterline.status import EMBEDDED_REDIS, collect_status, print_status
from models.store.webhook_endpoints import create_endpoint, disable_endpoint, record_health
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from tests.conftest import Env


def settings_of(env: Env, redis: bool = True) -> Settings:
    return Settings(
        database_url=env.backend.database_url,
        redis_url=env.backend.redis_url if redis else None,
    )


async def add_endpoint(env: Env, url: str) -> str:
    async with env.write() as conn:
        endpoint = await create_endpoint(
            conn,
            env.org_id,
            url=url,
            event_types=[],
            description="",
            secret="whsec_test",
            now=env.clock(),
        )
    return endpoint.id


async def emit(env: Env) -> None:
    outbox = Outbox()
    async with env.write() as conn:
        event = WebhookEvent("customer.created", {"customer_id": "c1", "name": "C"}, None)
        await outbox.emit(conn, env.org_id, event, env.clock())
    await outbox.dispatch(env.redis)


async def test_nothing_owed_on_a_fresh_install(env: Env) -> None:
    status = await collect_status(settings_of(env), env.clock())
    assert (status.queue_depth, status.queue_ready, status.queue_note) == (0, 0, None)
    assert (status.outbox_backlog, status.stripe_pushes_pending) == (0, 0)
    assert status.failing_endpoints == [] and status.disabled_endpoints == []


async def test_the_backlog_and_a_failing_endpoint(env: Env) -> None:
    failing_id = await add_endpoint(env, "https://hooks.example.com/failing")
    await add_endpoint(env, "https://hooks.example.com/healthy")
    await emit(env)  # one delivery to each endpoint, due now
    since = env.clock()
    async with env.write() as conn:
        await record_health(conn, failing_id, False, since)
    env.clock.set(since + timedelta(minutes=5))
    status = await collect_status(settings_of(env), env.clock())
    assert status.outbox_backlog == 2
    assert status.queue_depth == 2
    (failing,) = status.failing_endpoints
    assert (failing.org_id, failing.endpoint_id) == (env.org_id, failing_id)
    assert (failing.url, failing.failing_since) == ("https://hooks.example.com/failing", since)
    assert status.disabled_endpoints == []
    earlier = await collect_status(settings_of(env), since - timedelta(seconds=1))
    assert earlier.outbox_backlog == 0  # not due yet then


async def test_endpoints_disabled_in_the_last_day(env: Env) -> None:
    old_id = await add_endpoint(env, "https://hooks.example.com/old")
    async with env.write() as conn:
        await disable_endpoint(conn, old_id, "the endpoint answered 410 Gone", env.clock())
    env.clock.set(env.clock() + timedelta(days=2))
    recent_id = await add_endpoint(env, "https://hooks.example.com/recent")
    async with env.write() as conn:
        await record_health(conn, recent_id, False, env.clock())
        await disable_endpoint(conn, recent_id, "every attempt failed", env.clock())
    status = await collect_status(settings_of(env), env.clock() + timedelta(hours=1))
    (disabled,) = status.disabled_endpoints
    assert (disabled.endpoint_id, disabled.reason) == (recent_id, "every attempt failed")
    assert disabled.disabled_at == env.clock()
    assert status.failing_endpoints == []  # a disabled endpoint is no longer "failing"


async def test_without_a_shared_redis_the_queue_is_not_read(env: Env) -> None:
    await emit(env)
    status = await collect_status(settings_of(env, redis=False), env.clock())
    assert (status.queue_depth, status.queue_note) == (None, EMBEDDED_REDIS)
    assert status.outbox_backlog == 0  # no endpoint: nothing owed


async def test_an_unreachable_redis_is_reported_not_raised(env: Env) -> None:
    settings = Settings(database_url=env.backend.database_url, redis_url="redis://127.0.0.1:1/0")
    status = await collect_status(settings, env.clock())
    assert status.queue_depth is None
    assert status.queue_note is not None and status.queue_note.startswith("Redis unreachable")


async def test_the_status_prints_as_tables(env: Env) -> None:
    failing_id = await add_endpoint(env, "https://hooks.example.com/failing")
    await emit(env)
    async with env.write() as conn:
        await record_health(conn, failing_id, False, env.clock())
    console = Console(record=True, width=200)
    print_status(await collect_status(settings_of(env), env.clock()), console)
    printed = console.export_text()
    assert "job queue (all / due now)" in printed and "1 / 1" in printed
    assert "webhook deliveries due" in printed
    assert "Failing webhook endpoints" in printed
    assert env.org_id in printed and "https://hooks.example.com/failing" in printed
    assert "2026-04-10 12:00:00Z" in printed
    console = Console(record=True, width=200)
    print_status(await collect_status(settings_of(env, redis=False), env.clock()), console)
    assert EMBEDDED_REDIS in console.export_text()
