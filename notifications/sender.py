"""One HTTP delivery attempt of a webhook (SPEC §10): POST, no redirects, a total time
limit, at most 4 KiB of the response kept for the attempt log; and the sending slots a
worker process makes its attempts on."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

import httpx

MAX_RESPONSE_BYTES: Final = 4096
"""How much of a response body is read and logged (the first 4 KiB)."""


@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt.

    ``status_code`` is ``None`` when no response status arrived (connection error,
    timeout before the headers). ``duration_ms`` is the wall time of the whole attempt in
    whole milliseconds (rounded, >= 0). ``response_body`` is the first 4 KiB of the
    response body, decoded as UTF-8 with ``errors="replace"``. ``error`` says why the
    attempt failed when the status alone does not ("timeout after 15 s", "connection
    refused", "redirect not followed" …). ``retry_after`` is the raw ``Retry-After`` header.
    """

    status_code: int | None
    duration_ms: int
    response_body: str = ""
    error: str | None = None
    retry_after: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx status arrived in time (and no error)."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """The endpoint answered ``410 Gone``: it must be disabled at once."""
        return self.status_code == 410


async def send(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float,  # noqa: ASYNC109 (the whole-attempt limit, applied with asyncio.timeout)
    connect_to: str | None = None,
) -> Attempt:
    """POST ``body`` to ``url`` once and report what happened; never raises for network
    failures (they become ``Attempt.error``), only for programming errors: an invalid or
    non-http(s) URL (which :func:`notifications.ssrf.check_url` refuses beforehand), an
    invalid header, a timeout <= 0.

    Sends ``content-type: application/json`` and ``accept-encoding: identity``, then
    ``headers`` (which win on a clash). Redirects are not followed: a 3xx is a failure
    recorded with its status. ``timeout`` (seconds, > 0) bounds the whole attempt —
    connect, send, headers and reading the body. At most ``MAX_RESPONSE_BYTES`` of the
    body are read from the network (the connection is then dropped), so a huge or endless
    body costs nothing. Once the status has arrived the outcome is decided: a timeout or
    network failure while reading the (log-only) body just ends the read, keeping what
    arrived. Duration is measured with ``time.perf_counter``.

    ``connect_to`` (an IP address: the one :func:`notifications.ssrf.check_destination`
    checked) is where the connection goes; the name in ``url`` is not resolved again. The
    request still carries the URL's ``Host`` and, over TLS, its name as SNI and as the
    name the certificate must match.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    request_headers = httpx.Headers(
        {"content-type": "application/json", "accept-encoding": "identity"}
    )
    request_headers.update(headers)  # case-insensitive: a given header replaces a default
    target, extensions = _pinned(httpx.URL(url), connect_to, request_headers)
    status_code: int | None = None
    retry_after: str | None = None
    received = bytearray()
    error: str | None = None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "POST",
                target,
                content=body,
                headers=request_headers,
                follow_redirects=False,
                timeout=httpx.Timeout(timeout),
                extensions=extensions,
            ) as response:
                status_code = response.status_code
                retry_after = response.headers.get("retry-after")
                raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
                async with aclosing(raw) as chunks:
                    async for chunk in chunks:
                        received += chunk
                        if len(received) >= MAX_RESPONSE_BYTES:
                            break
    except (TimeoutError, httpx.TimeoutException):
        if status_code is None:
            error = f"timeout after {timeout:g} s"
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError):
        raise
    except httpx.TransportError as exc:
        if status_code is None:
            error = _describe(exc)
    duration_ms = round((time.perf_counter() - started) * 1000)
    if error is None and status_code is not None and 300 <= status_code < 400:
        error = "redirect not followed"
    return Attempt(
        status_code=status_code,
        duration_ms=max(duration_ms, 0),
        response_body=bytes(received[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace"),
        error=error,
        retry_after=retry_after,
    )


def _pinned(
    url: httpx.URL, connect_to: str | None, headers: httpx.Headers
) -> tuple[httpx.URL, dict[str, Any]]:
    """The URL to request and its extensions so that the connection goes to
    ``connect_to``, with the original ``Host`` header and TLS server name."""
    if connect_to is None or connect_to == url.host:
        return url, {}
    if "host" not in headers:
        headers["host"] = url.netloc.decode("ascii")
    return url.copy_with(host=connect_to), {"sni_hostname": url.raw_host.decode("ascii")}


def _describe(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        kind = "connection failed"
    elif isinstance(exc, httpx.RemoteProtocolError):
        kind = "protocol error"
    else:
        kind = "network error"
    detail = str(exc)
    return f"{kind}: {detail}" if detail else kind


class Slots:
    """The sending slots of a process: at most ``size`` attempts in flight at once, each on
    its own ``httpx.AsyncClient`` holding one keep-alive connection.

    One client with ``size`` connections would cost O(size) per request (httpcore scans its
    whole pool, polling every idle socket, whenever a request starts or ends); one
    connection per slot keeps that O(1) at any concurrency. A free slot that last reached
    the same origin (scheme://host:port) is taken first, so its connection is reused.
    Clients are made on first need and share one TLS context. A client only ever serves
    one origin and address: a slot taken for another is given a new client (so a
    connection made for one host name, TLS name included, is never reused for another
    name at the same address). ``size`` >= 1."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._size = size
        self._free = asyncio.Semaphore(size)
        self._idle: dict[str, list[httpx.AsyncClient]] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._tls: ssl.SSLContext | None = None

    @asynccontextmanager
    async def slot(
        self, url: str, connect_to: str | None = None
    ) -> AsyncIterator[httpx.AsyncClient]:
        """Wait for a free slot and lend its client for one attempt to ``url`` (connected
        to ``connect_to`` when given, see :func:`send`)."""
        origin = "/".join(url.split("/", 3)[:3]) + ("" if connect_to is None else f"@{connect_to}")
        async with self._free:
            client = await self._take(origin)
            try:
                yield client
            finally:
                self._idle.setdefault(origin, []).append(client)

    async def _take(self, origin: str) -> httpx.AsyncClient:
        if origin in self._idle:
            idle = self._idle[origin]
            client = idle.pop()
            if not idle:
                del self._idle[origin]
            return client
        if len(self._clients) >= self._size:  # retire a client of another origin
            other = next(iter(self._idle))
            idle = self._idle[other]
            retired = idle.pop()
            if not idle:
                del self._idle[other]
            self._clients.remove(retired)
            await retired.aclose()
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._clients.append(httpx.AsyncClient(limits=one, verify=self._tls))
        return self._clients[-1]

    async def aclose(self) -> None:
        """Close every client (and its connection)."""
        for client in self._clients:
            await client.aclose()
