"""Helpers for the websocket tests: the ``env`` fixture's app served by a real uvicorn on a
free port of 127.0.0.1 (in this event loop, sharing the app's database, Redis and clock),
and ``gql`` clients speaking graphql-transport-ws, authenticated in ``connection_init``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from starlette.types import ASGIApp

from tests.conftest import Env

PROTOCOL = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"


def app_of(env: Env) -> ASGIApp:
    """The app behind ``env.client`` (its lifespan is entered by the fixture)."""
    return env.app


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp,
    *,
    log_level: str = "warning",
    then_configure: Callable[[], None] | None = None,
) -> AsyncIterator[str]:
    """``host:port`` of uvicorn serving ``app`` until the block ends; ``then_configure``
    runs after uvicorn configured logging (as the app's own logging does in production)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level=log_level,
        timeout_graceful_shutdown=2,
    )
    if then_configure is not None:
        then_configure()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()  # raises why it stopped
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def init_payload(key: str | None) -> dict[str, Any]:
    return {"authorization": f"Bearer {key}"} if key else {}


@contextlib.asynccontextmanager
async def session(host: str, key: str | None) -> AsyncIterator[AsyncClientSession]:
    """A gql session over one websocket, authenticated with ``key``."""
    transport = WebsocketsTransport(
        url=f"ws://{host}/graphql",
        init_payload=init_payload(key),
        subprotocols=[PROTOCOL],
        ack_timeout=5,
    )
    async with Client(transport=transport) as opened:
        yield opened


def request(query: str, **variables: Any) -> GraphQLRequest:
    return GraphQLRequest(query, variable_values=variables)


async def first(host: str, key: str, query: str, **variables: Any) -> dict[str, Any]:
    """The first result of a subscription as a response body: ``{"data": …}``, or
    ``{"data": None, "errors": […]}`` when it fails."""
    async with session(host, key) as opened:
        stream = opened.subscribe(request(query, **variables))
        try:
            data = await asyncio.wait_for(anext(stream), 10)
        except TransportQueryError as error:
            return {"data": error.data, "errors": error.errors}
        finally:
            await stream.aclose()
    return {"data": data}
