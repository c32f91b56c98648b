"""A TCP proxy between the app and its PostgreSQL server, run in the test's event loop,
that a test turns against the app: refuse new connections, cut the open ones, stall
(accept and hold, forward nothing; at once or from a marked message on), or withhold the
server's answer to a marked message (COMMIT) and cut the connection, so the app never
learns the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class DatabaseProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self.refused = False
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._withhold: bytes | None = None
        self._stall_at: bytes | None = None
        self.withheld = asyncio.Event()
        """Set once the answer to the marked message was withheld and the link cut."""

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1; returns it."""
        await self._listen()
        return self.port

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.refused = False

    def refuse(self) -> None:
        """Stop listening: a new connection is refused (the open ones are left alone)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.refused = True

    async def accept(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            await self._listen()

    def cut(self) -> int:
        """Reset every open connection (both sides); returns how many were cut."""
        links = list(self._links)
        for link in links:
            link.abort()
        return len(links)

    def stall(self) -> None:
        """Forward nothing more: new connections are accepted and held; bytes on the open
        ones are held too, as if the network had gone silent."""
        self._flowing.clear()

    def stall_at(self, marker: bytes) -> None:
        """Stall (as :meth:`stall`) from the next client message holding ``marker``, which
        is held too: the app is then mid-statement."""
        self._stall_at = marker

    def flow(self) -> None:
        """Forward again (what was held goes through)."""
        self._flowing.set()

    def withhold_answer_to(self, marker: bytes) -> None:
        """The next client message holding ``marker`` reaches the server, but the server's
        answer is dropped and the client's connection reset (once)."""
        self._withhold = marker
        self.withheld.clear()

    async def close(self) -> None:
        self.refuse()
        self.flow()
        self.cut()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(client_w)
        self._links.add(link)
        try:
            await self._flowing.wait()
            if link.dead:
                return
            server_r, server_w = await asyncio.open_connection(*self.upstream)
            link.server = server_w
            await asyncio.gather(
                self._pipe(link, client_r, server_w, upstream=True),
                self._pipe(link, server_r, client_w, upstream=False),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            link.abort()
            self._links.discard(link)
            self._tasks.discard(task)

    async def _pipe(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        try:
            while not link.dead:
                data = await reader.read(65536)
                if not data:
                    break
                if upstream and self._stall_at is not None and self._stall_at in data:
                    self._stall_at = None
                    self.stall()
                await self._flowing.wait()
                if link.dead:
                    break
                if not upstream and link.answer_withheld:
                    self._withhold = None
                    link.abort()
                    self.withheld.set()
                    break
                if upstream and self._withhold is not None and self._withhold in data:
                    link.answer_withheld = True
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if not link.dead:
                with contextlib.suppress(OSError):
                    writer.write_eof()


class _Link:
    """One proxied connection: the app's side and the server's side."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.dead = False
        self.answer_withheld = False

    def abort(self) -> None:
        """Reset the app's side at once (RST); close the server's side (it sees the end)."""
        if self.dead:
            return
        self.dead = True
        sock = self.client.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.transport.abort()
        if self.server is not None:
            self.server.transport.close()
