from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from notifications.sender import MAX_RESPONSE_BYTES, Attempt, Slots, send

ERROR_BODY = bytes(range(33, 127)) * 109  # 10,246 bytes of printable ASCII
BODY = b'{"id":"msg_1","type":"invoice.finalized","data":{}}'


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    header_names: list[str]


@dataclass
class LocalServer:
    """A tiny real HTTP/1.1 server on 127.0.0.1 whose behaviour is chosen by the path."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    forever: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers: dict[str, str] = {}
            names: list[str] = []
            while (line := (await reader.readline()).decode().strip()) != "":
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
                names.append(name.strip().lower())
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body, names))
            await self.respond(path, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.handlers.discard(task)

    async def respond(self, path: str, writer: asyncio.StreamWriter) -> None:
        def head(status: str, length: int, *extra: str) -> None:
            lines = [f"HTTP/1.1 {status}", f"content-length: {length}", *extra, "", ""]
            writer.write("\r\n".join(lines).encode())

        if path == "/ok":
            head("200 OK", 11, "content-type: application/json")
            writer.write(b'{"ok":true}')
        elif path == "/accepted-no-body":
            head("204 No Content", 0)
        elif path == "/error":
            head("500 Internal Server Error", len(ERROR_BODY))
            writer.write(ERROR_BODY)
        elif path == "/redirect":
            head("302 Found", 5, f"location: {self.url('/ok')}")
            writer.write(b"moved")
        elif path == "/gone":
            head("410 Gone", 4)
            writer.write(b"gone")
        elif path == "/busy":
            head("429 Too Many Requests", 0, "retry-after: 120")
        elif path == "/binary":
            head("400 Bad Request", 4)
            writer.write(b"\xff\xfeok")
        elif path == "/endless":  # announces 10 MiB, sends 8 KiB, then stalls
            head("200 OK", 10 * 1024 * 1024)
            writer.write(b"x" * 8192)
        elif path == "/drip":  # one byte every 20 ms, never finishing in time
            head("200 OK", 1000)
            for _ in range(1000):
                writer.write(b"y")
                await writer.drain()
                await asyncio.sleep(0.02)
        # "/hang" and the stalled bodies wait here until the client gives up
        await writer.drain()
        if path in ("/hang", "/endless"):
            await self.forever.wait()


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    local = LocalServer()
    listener = await asyncio.start_server(local.handle, "127.0.0.1", 0)
    local.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield local
        for task in list(local.handlers):
            task.cancel()
        await asyncio.gather(*local.handlers, return_exceptions=True)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


async def post(client: httpx.AsyncClient, url: str, limit: float = 5.0) -> Attempt:
    return await send(client, url, {"webhook-id": "msg_1"}, BODY, limit)


async def test_a_2xx_succeeds(server: LocalServer, client: httpx.AsyncClient) -> None:
    attempt = await post(client, server.url("/ok"))
    assert attempt.status_code == 200
    assert attempt.succeeded and not attempt.gone
    assert attempt.response_body == '{"ok":true}'
    assert attempt.error is None and attempt.retry_after is None
    assert 0 <= attempt.duration_ms < 5000
    assert server.received[0].headers["content-type"] == "application/json"
    assert server.received[0].headers["webhook-id"] == "msg_1"
    assert (await post(client, server.url("/accepted-no-body"))).succeeded


async def test_the_request_is_a_json_post_with_the_given_headers(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    await send(
        client,
        server.url("/ok"),
        {
            "webhook-id": "msg_1",
            "webhook-signature": "v1,abc",
            "User-Agent": "Meterline",
            "Content-Type": "application/json; charset=utf-8",
        },
        BODY,
        5.0,
    )
    [request] = server.received
    assert (request.method, request.path, request.body) == ("POST", "/ok", BODY)
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.header_names.count("content-type") == 1
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["webhook-signature"] == "v1,abc"
    assert request.headers["user-agent"] == "Meterline"


async def test_a_5xx_fails_and_keeps_the_first_4_kib_of_the_body(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    attempt = await post(client, server.url("/error"))
    assert attempt.status_code == 500
    assert not attempt.succeeded
    assert attempt.error is None
    assert len(attempt.response_body) == MAX_RESPONSE_BYTES == 4096
    assert attempt.response_body == ERROR_BODY[:4096].decode()


async def test_a_redirect_is_not_followed(server: LocalServer, client: httpx.AsyncClient) -> None:
    attempt = await post(client, server.url("/redirect"))
    assert attempt.status_code == 302
    assert attempt.error == "redirect not followed"
    assert not attempt.succeeded
    assert attempt.response_body == "moved"
    assert [r.path for r in server.received] == ["/redirect"]


async def test_410_means_gone(server: LocalServer, client: httpx.AsyncClient) -> None:
    attempt = await post(client, server.url("/gone"))
    assert (attempt.status_code, attempt.gone, attempt.succeeded) == (410, True, False)
    assert attempt.response_body == "gone"


async def test_429_reports_the_raw_retry_after(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    attempt = await post(client, server.url("/busy"))
    assert (attempt.status_code, attempt.retry_after) == (429, "120")
    assert not attempt.succeeded and attempt.error is None


async def test_an_undecodable_body_is_replaced_not_raised(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    attempt = await post(client, server.url("/binary"))
    assert attempt.response_body == "\ufffd\ufffdok"


async def test_a_server_slower_than_the_timeout_is_a_timeout(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    attempt = await post(client, server.url("/hang"), limit=0.2)
    assert attempt.status_code is None
    assert attempt.error == "timeout after 0.2 s"
    assert not attempt.succeeded
    assert 150 <= attempt.duration_ms < 2000


async def test_the_timeout_bounds_the_whole_attempt_including_the_body(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    # Each byte arrives well within a per-read timeout; only a total limit stops this.
    attempt = await post(client, server.url("/drip"), limit=0.3)
    assert attempt.status_code == 200
    assert attempt.succeeded  # the 2xx arrived in time; the body is only logged
    assert 0 < len(attempt.response_body) < 1000
    assert set(attempt.response_body) == {"y"}
    assert attempt.duration_ms < 2000


async def test_a_huge_body_is_not_read_past_4_kib(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    attempt = await post(client, server.url("/endless"), limit=3.0)
    assert attempt.status_code == 200
    assert attempt.error is None
    assert attempt.response_body == "x" * 4096
    assert attempt.duration_ms < 2500  # returned without waiting for the rest


async def test_a_refused_connection_is_reported_not_raised(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempt = await post(client, f"http://127.0.0.1:{port}/hook")
    assert attempt.status_code is None
    assert attempt.error == "connection refused"
    assert not attempt.succeeded and not attempt.gone
    assert attempt.response_body == ""


async def test_programming_errors_still_raise(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await send(client, "http://127.0.0.1:1/", {}, BODY, 0)
    with pytest.raises(httpx.UnsupportedProtocol):
        await send(client, "ftp://127.0.0.1/", {}, BODY, 1.0)
    with pytest.raises(httpx.LocalProtocolError):
        await send(client, server.url("/ok"), {"bad header": "x"}, BODY, 1.0)


@pytest.mark.parametrize(
    ("status", "error", "succeeded"),
    [
        (200, None, True),
        (299, None, True),
        (204, "x", False),
        (300, None, False),
        (None, None, False),
    ],
)
def test_succeeded_means_a_2xx_without_error(
    status: int | None, error: str | None, succeeded: bool
) -> None:
    assert Attempt(status, 1, error=error).succeeded is succeeded


# --- sending slots ------------------------------------------------------------------------


async def test_slots_bound_the_attempts_in_flight_and_reuse_their_clients(
    server: LocalServer,
) -> None:
    slots = Slots(2)
    in_flight, most, clients = 0, 0, set()

    async def attempt() -> Attempt:
        nonlocal in_flight, most
        async with slots.slot(server.url("/ok")) as client:
            in_flight += 1
            most = max(most, in_flight)
            clients.add(id(client))
            try:
                return await post(client, server.url("/ok"))
            finally:
                in_flight -= 1

    found = await asyncio.gather(*(attempt() for _ in range(8)))
    await slots.aclose()
    assert all(a.succeeded for a in found)
    assert (most, len(clients), len(server.received)) == (2, 2, 8)


async def test_a_free_slot_that_reached_the_same_origin_is_taken_first(
    server: LocalServer,
) -> None:
    slots = Slots(2)
    here, there = server.url("/ok"), f"http://localhost:{server.port}/ok"
    used = []
    for url in (here, there, here, there, here):
        async with slots.slot(url) as client:
            assert (await post(client, url)).succeeded
            used.append(client)
    await slots.aclose()
    assert used[0] is used[2] is used[4]
    assert used[1] is used[3] and used[1] is not used[0]


def test_slots_need_a_size_of_at_least_one() -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        Slots(0)
