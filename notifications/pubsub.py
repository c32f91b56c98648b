"""Live change notices for GraphQL subscriptions, fanned out through Redis pub/sub.

A notice says only "this customer's usage (or balances, or alert states) changed" on the
channel ``{topic}:{org_id}:{customer_id}``; it carries no data: a subscriber re-reads the
database. Redis is not the truth: a lost notice delays a push, it never loses data, and
after a lost connection every listener is told that something may have changed.

Any API process can serve any subscriber: each process holds one :class:`ChangeFeed`, one
Redis pub/sub connection whose channels are reference-counted over the local listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger("meterline.pubsub")

MIN_INTERVAL = 0.25
"""Seconds between two pushes of one subscription, at least."""
PUBLISH_TIMEOUT = 2.0
"""Seconds ``publish`` waits for Redis before giving up (the change is committed anyway)."""
CONTROL_CHANNEL = "meterline:feed"
"""Subscribed by every feed so its connection is always in subscribe mode; never published."""


class Topic(StrEnum):
    """What changed for a customer."""

    USAGE = "usage"
    BALANCE = "balance"
    ALERTS = "alerts"


def channel(topic: Topic, org_id: str, customer_id: str) -> str:
    """The pub/sub channel of one customer's changes of one kind."""
    return f"{topic}:{org_id}:{customer_id}"


async def publish(redis: Redis, topic: Topic, org_id: str, customer_ids: Iterable[str]) -> None:
    """Tell every subscriber of these customers that ``topic`` changed: one PUBLISH per
    customer, in one pipeline (one round trip). Call it after the change is committed.

    Never raises for Redis: a failure (or no answer within ``PUBLISH_TIMEOUT`` seconds) is
    logged and swallowed, since the database already holds the change."""
    channels = sorted({channel(topic, org_id, c) for c in customer_ids})
    if not channels:
        return
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            async with redis.pipeline(transaction=False) as pipe:
                for name in channels:
                    pipe.publish(name, b"")
                await pipe.execute()
    except (RedisError, OSError) as error:  # OSError covers TimeoutError
        log.warning("could not publish %s for %d customer(s): %r", topic, len(channels), error)


@dataclass(eq=False)
class _Listener:
    """One ``listen`` block: the topics changed since its last step, and an event set when
    one more arrives."""

    topics: dict[str, Topic]
    """Channel → the topic it carries."""
    changed: set[Topic] = field(default_factory=set)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self, topics: Iterable[Topic]) -> None:
        self.changed.update(topics)
        self.event.set()


class Changes:
    """The change bursts of one listener: each ``async for`` step waits for a change, then
    returns the topics that changed, at least ``min_interval`` seconds after the previous
    step (or after the listener started). Changes arriving meanwhile collapse into it."""

    def __init__(self, listener: _Listener, min_interval: float) -> None:
        """Steps of ``listener``, ``min_interval`` seconds apart at least; the interval is
        counted from now (the first step waits for it too)."""
        self._listener = listener
        self._min_interval = min_interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> frozenset[Topic]:
        """The topics changed since the previous step (never empty): waits for a change,
        then for the rest of ``min_interval``, gathering what else arrives meanwhile."""
        await self._listener.event.wait()
        delay = self._last + self._min_interval - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._listener.event.clear()
        topics = frozenset(self._listener.changed)
        self._listener.changed.clear()
        self._last = self._loop.time()
        return topics


class ChangeFeed:
    """One per process: a shared Redis pub/sub connection dispatching notices to local
    listeners. ``start()`` it before use and ``stop()`` it at shutdown.

    A channel is subscribed while at least one listener needs it. A background task reads
    the connection; if the connection drops it logs, backs off (0.5 s doubling to
    ``max_backoff``), reconnects, re-subscribes and notifies every listener once."""

    def __init__(
        self,
        redis: Redis,
        *,
        min_interval: float = MIN_INTERVAL,
        ready_timeout: float = 2.0,
        idle_interval: float = 30.0,
        max_backoff: float = 30.0,
    ) -> None:
        """``min_interval``: seconds between two steps of one listener, at least (see
        :class:`Changes`); ``ready_timeout``: seconds ``listen`` waits for Redis to confirm
        its channels; ``idle_interval``: seconds of silence after which the connection is
        pinged, and after twice which it is deemed lost."""
        self._redis = redis
        self._min_interval = min_interval
        self._ready_timeout = ready_timeout
        self._idle_interval = idle_interval
        self._max_backoff = max_backoff
        self._listeners: dict[str, set[_Listener]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._pending: Counter[str] = Counter()  # SUBSCRIBEs sent, not yet confirmed
        self._subscribed: set[str] = set()  # as sent on the current connection
        self._renotify: set[str] = set()  # re-subscribed after a reconnection
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()  # one command at a time on the pub/sub connection
        self._task: asyncio.Task[None] | None = None
        self._syncs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the background reader (it connects, and reconnects, by itself)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="meterline-change-feed")

    async def stop(self) -> None:
        """Stop reading and close the connection; listeners get no further changes."""
        tasks = [t for t in (self._task, *self._syncs) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    @contextlib.asynccontextmanager
    async def listen(
        self,
        org_id: str,
        customer_id: str,
        topics: Iterable[Topic],
    ) -> AsyncIterator[Changes]:
        """The changes of one customer's ``topics``, coalesced into steps at least
        ``min_interval`` seconds apart (see :class:`Changes`).

        On entry the channels are subscribed and, unless Redis is unreachable for
        ``ready_timeout`` seconds, confirmed: a change committed after entry is never
        missed. On exit (or cancellation) channels no other listener needs are dropped."""
        listener = _Listener({channel(t, org_id, customer_id): t for t in set(topics)})
        for name in listener.topics:
            if name not in self._listeners:
                self._listeners[name] = set()
                self._ready[name] = asyncio.Event()
                if name in self._subscribed and not self._pending[name]:
                    self._ready[name].set()
            self._listeners[name].add(listener)
        try:
            await self._sync()
            waits = [self._ready[name].wait() for name in listener.topics]
            try:
                async with asyncio.timeout(self._ready_timeout):
                    await asyncio.gather(*waits)
            except TimeoutError:
                log.warning("change feed: Redis has not confirmed %s", sorted(listener.topics))
            yield Changes(listener, self._min_interval)
        finally:
            for name in listener.topics:
                members = self._listeners[name]
                members.discard(listener)
                if not members:
                    del self._listeners[name]
                    del self._ready[name]
            # in the background: a second cancellation must not leave a channel behind
            task = asyncio.create_task(self._sync())
            self._syncs.add(task)
            task.add_done_callback(self._syncs.discard)

    async def _sync(self) -> None:
        """Make the connection's subscriptions those the listeners need."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # (re)connecting: the new connection subscribes what is needed
            wanted = set(self._listeners)
            new = sorted(wanted - self._subscribed)
            gone = sorted(self._subscribed - wanted)
            # the state changes before the commands are sent: a listener arriving
            # meanwhile must not take an in-flight (un)subscription for done
            self._pending.update(new)
            self._subscribed.update(new)
            self._subscribed.difference_update(gone)
            try:
                if new:
                    await pubsub.subscribe(*new)
                if gone:
                    await pubsub.unsubscribe(*gone)
            except Exception as error:
                log.warning("change feed: could not (un)subscribe: %r", error)
                await self._abandon(pubsub)

    async def _abandon(self, pubsub: PubSub) -> None:
        """Drop a connection that failed; the reader then reconnects."""
        if pubsub.connection is not None:
            with contextlib.suppress(Exception):
                await pubsub.connection.disconnect()

    async def _run(self) -> None:
        """The background task: connect, subscribe, read until the connection fails, back
        off, and again, until cancelled."""
        backoff, connected_before = 0.5, False
        while True:
            pubsub = self._redis.pubsub()
            try:
                async with self._lock:
                    await pubsub.subscribe(CONTROL_CHANNEL)
                    self._pubsub = pubsub
                    self._subscribed.clear()
                    self._pending.clear()
                    for event in self._ready.values():
                        event.clear()
                    self._renotify = set(self._listeners) if connected_before else set()
                await self._sync()
                if connected_before:
                    log.info("change feed: reconnected to Redis")
                connected_before, backoff = True, 0.5
                await self._read(pubsub)
            except Exception as error:
                log.warning(
                    "change feed: Redis pub/sub connection lost (%r); retrying in %.1f s",
                    error,
                    backoff,
                )
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _read(self, pubsub: PubSub) -> None:
        """Dispatch what ``pubsub`` receives; raise once it stays silent after a PING."""
        silent = 0
        while True:
            message = await pubsub.get_message(timeout=self._idle_interval)
            if message is not None:
                silent = 0
                self._dispatch(message)
                continue
            silent += 1
            if silent > 1:
                raise ConnectionError(f"no answer to PING in {self._idle_interval} s")
            async with self._lock:
                await pubsub.ping()

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Route one pub/sub message: a notice to the channel's listeners, a subscription's
        confirmation to those waiting in ``listen`` (and, after a reconnection, one step to
        each listener of the channel)."""
        raw = message.get("channel")
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind = message.get("type")
        if kind == "message":
            for listener in self._listeners.get(name, ()):
                listener.notify([listener.topics[name]])
        elif kind == "subscribe" and name != CONTROL_CHANNEL:
            self._pending[name] -= 1
            if self._pending[name] <= 0:
                del self._pending[name]
                if name in self._ready:
                    self._ready[name].set()
            if name in self._renotify:
                self._renotify.discard(name)
                for listener in self._listeners.get(name, ()):
                    listener.notify([listener.topics[name]])
