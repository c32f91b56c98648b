"""The SQLite writer queue: one writer at a time, urgent writers before queued ordinary
ones, arrival order otherwise, and a cancelled waiter never loses or keeps the turn."""

from __future__ import annotations

import asyncio

from models.writer_queue import WriterQueue


async def test_urgent_writers_go_before_queued_ordinary_ones() -> None:
    queue, order = WriterQueue(), []
    release = asyncio.Event()

    async def write(name: str, urgent: bool = False) -> None:
        async with queue.turn(urgent=urgent):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(write("first"))
    await asyncio.sleep(0)  # "first" holds the turn
    waiting = [
        asyncio.create_task(write("batch-1")),
        asyncio.create_task(write("batch-2")),
        asyncio.create_task(write("alert", urgent=True)),
        asyncio.create_task(write("batch-3")),
        asyncio.create_task(write("delivery", urgent=True)),
    ]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "alert", "delivery", "batch-1", "batch-2", "batch-3"]


async def test_one_writer_at_a_time() -> None:
    queue, inside, most = WriterQueue(), 0, 0

    async def write(urgent: bool) -> None:
        nonlocal inside, most
        async with queue.turn(urgent=urgent):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(write(n % 3 == 0) for n in range(30)))
    assert (most, inside) == (1, 0)


async def test_a_cancelled_waiter_neither_loses_nor_keeps_the_turn() -> None:
    queue, order = WriterQueue(), []
    release = asyncio.Event()

    async def write(name: str) -> None:
        async with queue.turn():
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(write("first"))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(write("cancelled"))
    last = asyncio.create_task(write("last"))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.gather(first, last)
    assert order == ["first", "last"]
    async with queue.turn():  # free again
        order.append("after")
    assert order[-1] == "after"
