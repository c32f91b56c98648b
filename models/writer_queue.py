"""One SQLite writer at a time in this process, urgent writers first.

SQLite has a single write lock; queueing this process's writers here (rather than in
SQLite's busy handler, which sleeps up to 100 ms between tries) keeps them in order. Urgent
writers (the jobs that notify: alert evaluations, webhook deliveries) are served before the
queued ordinary ones (ingest batches), so a notification does not wait behind a backlog of
batches; ordinary writers keep their arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriterQueue:
    def __init__(self) -> None:
        self._held = False
        self._waiting: dict[bool, deque[asyncio.Future[None]]] = {True: deque(), False: deque()}

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold the writer's turn for the block."""
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[urgent].append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the turn was handed over as we were cancelled: pass it on
            else:
                self._waiting[urgent].remove(waiter)
            raise

    def _release(self) -> None:
        """Hand the turn to the first urgent waiter, else the first ordinary one."""
        for urgent in (True, False):
            queue = self._waiting[urgent]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes on: still held
                    return
        self._held = False
