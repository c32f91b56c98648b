"""The change feed on a real Redis (embedded, and the server of METERLINE_TEST_REDIS_URL when
set): fan-out to every listener of every process, coalescing of bursts, reference-counted
subscriptions dropped when the last listener leaves, recovery from a lost connection.

Pub/sub channels are global to a Redis server (not per database), so every test names its
own organization."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from notifications.pubsub import ChangeFeed, Changes, Topic, channel, publish
from tests.conftest import Backend

GAP = 0.2  # min_interval of the feeds under test


@pytest.fixture
async def redis(backend: Backend) -> AsyncIterator[Redis]:
    client = Redis.from_url(backend.redis_url)
    yield client
    await client.aclose()


@contextlib.asynccontextmanager
async def running(redis: Redis, **options: Any) -> AsyncIterator[ChangeFeed]:
    feed = ChangeFeed(redis, min_interval=options.pop("min_interval", GAP), **options)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.stop()


def org() -> str:
    return f"org_{secrets.token_hex(6)}"


class Collector:
    """Consumes a listener's changes in the background, recording each step's topics."""

    def __init__(self, changes: Changes) -> None:
        self.steps: list[frozenset[Topic]] = []
        self.task = asyncio.create_task(self._consume(changes))

    async def _consume(self, changes: Changes) -> None:
        async for topics in changes:
            self.steps.append(topics)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def until(condition: Callable[[], Awaitable[bool] | bool], seconds: float = 10) -> None:
    """Wait for ``condition`` (polled); fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while True:
            found = condition()
            if found if isinstance(found, bool) else await found:
                return
            await asyncio.sleep(0.02)


async def subscribers(redis: Redis, name: str) -> int:
    found = await redis.pubsub_numsub(name)
    return int(found[0][1])


async def test_a_notice_reaches_every_listener_of_every_process(redis: Redis) -> None:
    org_id = org()
    async with (
        running(redis) as one,
        running(redis) as two,
        one.listen(org_id, "cus_a", [Topic.USAGE]) as first,
        one.listen(org_id, "cus_a", [Topic.USAGE, Topic.BALANCE]) as second,
        two.listen(org_id, "cus_a", [Topic.USAGE]) as third,
        one.listen(org_id, "cus_b", [Topic.USAGE]) as other_customer,
        one.listen(org(), "cus_a", [Topic.USAGE]) as other_org,
        one.listen(org_id, "cus_a", [Topic.ALERTS]) as other_topic,
    ):
        everyone = [first, second, third, other_customer, other_org, other_topic]
        collectors = [Collector(changes) for changes in everyone]
        # one Redis subscription per process, however many local listeners
        assert await subscribers(redis, channel(Topic.USAGE, org_id, "cus_a")) == 2
        await publish(redis, Topic.USAGE, org_id, ["cus_a"])
        await until(lambda: all(c.steps for c in collectors[:3]))
        await asyncio.sleep(GAP * 2)
        for collector in collectors:
            await collector.stop()
    assert [c.steps for c in collectors] == [[{Topic.USAGE}]] * 3 + [[]] * 3


async def test_a_burst_collapses_into_one_or_two_steps(redis: Redis) -> None:
    org_id = org()
    topics = [Topic.USAGE, Topic.BALANCE]
    async with running(redis) as feed, feed.listen(org_id, "cus_a", topics) as changes:
        collector = Collector(changes)
        for n in range(10):
            await publish(redis, topics[n % 2], org_id, ["cus_a"])
        await until(lambda: bool(collector.steps))
        await asyncio.sleep(GAP * 3)  # more than the gap: any trailing step is taken
        burst = list(collector.steps)
        await publish(redis, Topic.USAGE, org_id, ["cus_a"])
        await until(lambda: len(collector.steps) > len(burst))
        await asyncio.sleep(GAP * 3)
        await collector.stop()
    assert 1 <= len(burst) <= 2, burst
    assert frozenset().union(*burst) == {Topic.USAGE, Topic.BALANCE}
    assert collector.steps[len(burst) :] == [{Topic.USAGE}]


async def test_publish_sends_one_notice_per_customer(redis: Redis) -> None:
    org_id = org()
    async with (
        running(redis, min_interval=0) as feed,
        feed.listen(org_id, "cus_a", [Topic.USAGE]) as a,
        feed.listen(org_id, "cus_b", [Topic.USAGE]) as b,
        feed.listen(org_id, "cus_c", [Topic.USAGE]) as c,
    ):
        collectors = [Collector(changes) for changes in (a, b, c)]
        await publish(redis, Topic.USAGE, org_id, ["cus_a", "cus_b", "cus_a"])
        await publish(redis, Topic.USAGE, org_id, [])
        await until(lambda: bool(collectors[0].steps and collectors[1].steps))
        await asyncio.sleep(GAP)
        for collector in collectors:
            await collector.stop()
    assert [c.steps for c in collectors] == [[{Topic.USAGE}], [{Topic.USAGE}], []]


async def test_the_last_listener_leaving_drops_the_subscription(redis: Redis) -> None:
    org_id = org()
    name = channel(Topic.USAGE, org_id, "cus_a")
    async with running(redis) as feed:
        async with feed.listen(org_id, "cus_a", [Topic.USAGE]):
            async with feed.listen(org_id, "cus_a", [Topic.USAGE]):
                assert await subscribers(redis, name) == 1
            await asyncio.sleep(GAP)
            assert await subscribers(redis, name) == 1  # one listener is left
        await until(lambda: _zero(redis, name))

        # a listener cancelled while it waits for changes leaves nothing behind either
        async def wait_for_changes() -> None:
            async with feed.listen(org_id, "cus_a", [Topic.USAGE]) as changes:
                entered.set()
                async for _ in changes:
                    pass

        entered = asyncio.Event()
        task = asyncio.create_task(wait_for_changes())
        await entered.wait()
        assert await subscribers(redis, name) == 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await until(lambda: _zero(redis, name))
        assert feed._listeners == {}


async def _zero(redis: Redis, name: str) -> bool:
    return await subscribers(redis, name) == 0


async def test_a_lost_connection_is_re_established_and_listeners_are_told(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """After a reconnection every listener gets one step (a notice may have been missed
    meanwhile), and later notices arrive again."""
    org_id = org()
    async with running(redis) as feed, feed.listen(org_id, "cus_a", [Topic.ALERTS]) as changes:
        collector = Collector(changes)
        pubsub = feed._pubsub
        assert pubsub is not None and pubsub.connection is not None
        with caplog.at_level(logging.WARNING, logger="meterline.pubsub"):
            await pubsub.connection.disconnect()
            await until(lambda: bool(collector.steps))
        assert "connection lost" in caplog.text
        assert collector.steps == [{Topic.ALERTS}]
        await asyncio.sleep(GAP)
        await publish(redis, Topic.ALERTS, org_id, ["cus_a"])
        await until(lambda: len(collector.steps) == 2)
        await collector.stop()
    assert await _zero(redis, channel(Topic.ALERTS, org_id, "cus_a"))


async def test_publish_swallows_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="meterline.pubsub"):
        await publish(unreachable, Topic.USAGE, "org_x", ["cus_a"])
    await unreachable.aclose()
    assert "could not publish usage for 1 customer(s)" in caplog.text
