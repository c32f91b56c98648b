"""The change feed on a real Redis (embedded, and the server of METERLINE_TEST_REDIS_URL when
set): fan-out to every listener of every process, coalescing of bursts, reference-counted
subscriptions dropped when the last listener leaves, recovery from a lost connection.

Pub/sub channels are global to a Redis server (not per database), so every test names its
own organization."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from notifications.pubsub import ChangeFeed, Changes, Topic, channel, publish
from tests.conftest import Backend

GAP = 0.2  # min_interval of the feeds under test
SLACK = 0.01
"""Seconds a gap may fall short of GAP when measured from outside the feed."""


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
    """Consumes a listener's changes in the background, recording each step's topics and
    the loop's time when it was taken."""

    def __init__(self, changes: Changes) -> None:
        self.steps: list[frozenset[Topic]] = []
        self.times: list[float] = []
        self.task = asyncio.create_task(self._consume(changes))

    async def _consume(self, changes: Changes) -> None:
        loop = asyncio.get_running_loop()
        async for topics in changes:
            self.times.append(loop.time())
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


async def _zero(redis: Redis, name: str) -> bool:
    return await subscribers(redis, name) == 0


async def kill_pubsub(admin: Redis, name: str) -> int:
    """``CLIENT KILL`` the pub/sub connections named ``name``; returns how many."""
    found = [c["id"] for c in await admin.client_list(_type="pubsub") if c.get("name") == name]
    for client_id in found:
        await admin.client_kill_filter(_id=client_id)
    return len(found)


async def test_a_notice_reaches_every_listener_of_every_process(redis: Redis) -> None:
    """Without a gap every notice is a step of its own as soon as it arrives: a listener
    reached by a notice meant for another would show a step too many."""
    org_id, other_org = org(), org()
    async with (
        running(redis, min_interval=0) as one,
        running(redis, min_interval=0) as two,
        one.listen(org_id, "cus_a", [Topic.USAGE]) as first,
        one.listen(org_id, "cus_a", [Topic.USAGE, Topic.BALANCE]) as second,
        two.listen(org_id, "cus_a", [Topic.USAGE]) as third,
        one.listen(org_id, "cus_b", [Topic.USAGE]) as other_customer,
        one.listen(other_org, "cus_a", [Topic.USAGE]) as other_organization,
        one.listen(org_id, "cus_a", [Topic.ALERTS]) as other_topic,
    ):
        collectors = [
            Collector(changes)
            for changes in (first, second, third, other_customer, other_organization, other_topic)
        ]
        # one Redis subscription per process, however many local listeners
        assert await subscribers(redis, channel(Topic.USAGE, org_id, "cus_a")) == 2
        await publish(redis, Topic.USAGE, org_id, ["cus_a"])
        await until(lambda: all(c.steps for c in collectors[:3]))
        # then each of the others is told of a change of its own
        await publish(redis, Topic.USAGE, org_id, ["cus_b"])
        await publish(redis, Topic.USAGE, other_org, ["cus_a"])
        await publish(redis, Topic.ALERTS, org_id, ["cus_a"])
        await until(lambda: all(c.steps for c in collectors[3:]))
        for collector in collectors:
            await collector.stop()
    assert [c.steps for c in collectors] == [[{Topic.USAGE}]] * 5 + [[{Topic.ALERTS}]]


async def test_a_burst_is_coalesced_into_steps_min_interval_apart(redis: Redis) -> None:
    """Notices arriving faster than the gap make fewer steps than notices, each step at
    least the gap after the previous one, and every notice counted in one of them."""
    org_id = org()
    loop = asyncio.get_running_loop()
    topics = [Topic.USAGE, Topic.BALANCE, Topic.ALERTS]
    async with running(redis) as feed, feed.listen(org_id, "cus_a", topics) as changes:
        collector = Collector(changes)
        published, ends = 0, loop.time() + 3 * GAP
        while loop.time() < ends:  # a notice every 10 ms or so for three gaps
            await publish(redis, topics[published % 2], org_id, ["cus_a"])
            published += 1
            await asyncio.sleep(0.01)
        # Redis keeps the order of the notices: the step with this one holds the last of
        # the burst, and the next step holds the next notice alone
        await publish(redis, Topic.ALERTS, org_id, ["cus_a"])
        await until(lambda: Topic.ALERTS in frozenset().union(*collector.steps))
        burst = len(collector.steps)
        await publish(redis, Topic.BALANCE, org_id, ["cus_a"])
        await until(lambda: len(collector.steps) > burst)
        await collector.stop()
    assert 2 <= burst < published + 1, (burst, published)
    assert frozenset().union(*collector.steps[:burst]) == set(topics)
    assert collector.steps[burst:] == [{Topic.BALANCE}]
    gaps = [b - a for a, b in itertools.pairwise(collector.times)]
    # a lower bound: each step is taken at least the gap after the previous one (less the
    # few instructions between the feed reading its clock and the collector reading it)
    assert min(gaps) >= GAP - SLACK, gaps


async def test_publish_sends_one_notice_per_customer(redis: Redis) -> None:
    org_id = org()
    names = [channel(Topic.USAGE, org_id, c) for c in ("cus_a", "cus_b", "cus_c")]
    marker = f"{org_id}:marker"
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(*names, marker)
        await publish(redis, Topic.USAGE, org_id, ["cus_a", "cus_b", "cus_a"])
        await publish(redis, Topic.USAGE, org_id, [])
        await redis.publish(marker, b"")  # delivered after every notice published before
        received: list[str] = []
        async with asyncio.timeout(10):
            while marker not in received:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    received.append(message["channel"].decode())
    assert received == [*names[:2], marker]


async def test_the_last_listener_leaving_drops_the_subscription(redis: Redis) -> None:
    org_id = org()
    name = channel(Topic.USAGE, org_id, "cus_a")
    async with running(redis, min_interval=0) as feed:
        async with feed.listen(org_id, "cus_a", [Topic.USAGE]) as changes:
            async with feed.listen(org_id, "cus_a", [Topic.USAGE]):
                assert await subscribers(redis, name) == 1
            # the feed (un)subscribes in order: once a later listener's channel is dropped,
            # the inner listener's leaving has been handled too
            other = channel(Topic.USAGE, org_id, "cus_b")
            async with feed.listen(org_id, "cus_b", [Topic.USAGE]):
                assert await subscribers(redis, other) == 1
            await until(lambda: _zero(redis, other))
            assert await subscribers(redis, name) == 1  # one listener is left, and is told
            collector = Collector(changes)
            await publish(redis, Topic.USAGE, org_id, ["cus_a"])
            await until(lambda: collector.steps == [{Topic.USAGE}])
            await collector.stop()
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


async def test_a_lost_connection_is_re_established_and_listeners_are_told(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """After a reconnection every listener gets one step (a notice may have been missed
    meanwhile), and later notices arrive again. The connection is killed by Redis, as a
    failover or a restart would: only this feed's (its client has a name of its own), since
    other test sessions may share the server."""
    org_id, name = org(), f"meterline-test-{secrets.token_hex(6)}"
    own = Redis.from_url(backend.redis_url, client_name=name)
    admin = Redis.from_url(backend.redis_url, decode_responses=True)
    try:
        async with (
            running(own) as feed,
            feed.listen(org_id, "cus_a", [Topic.ALERTS]) as changes,
        ):
            collector = Collector(changes)
            with caplog.at_level(logging.WARNING, logger="meterline.pubsub"):
                assert await kill_pubsub(admin, name) == 1
                await until(lambda: bool(collector.steps))
            assert "connection lost" in caplog.text
            assert collector.steps == [{Topic.ALERTS}]
            await publish(own, Topic.ALERTS, org_id, ["cus_a"])
            await until(lambda: len(collector.steps) == 2)
            await collector.stop()
        assert collector.steps == [{Topic.ALERTS}] * 2
        await until(lambda: _zero(admin, channel(Topic.ALERTS, org_id, "cus_a")))
    finally:
        await own.aclose()
        await admin.aclose()


async def test_publish_swallows_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="meterline.pubsub"):
        await publish(unreachable, Topic.USAGE, "org_x", ["cus_a"])
    await unreachable.aclose()
    assert "could not publish usage for 1 customer(s)" in caplog.text
