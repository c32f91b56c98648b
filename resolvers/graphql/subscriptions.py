"""Subscriptions over graphql-transport-ws: a customer's usage, drafts, balances and alerts,
pushed on subscribe and again after each burst of changes (at most one push per 250 ms).

The socket is authenticated once, in ``connection_init``; every push re-reads the database
with fresh loaders and first checks that the credential is still valid (a customer token
expires, a key can be revoked)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from billing.errors import UnauthenticatedError
from models.store.api_keys import Principal, authenticate
from notifications.pubsub import Topic
from resolvers.graphql import customers as customers_api
from resolvers.graphql.context import Context
from resolvers.graphql.loaders import Loaders
from schema.alerts import Alert
from schema.customers import Balance, Customer
from schema.invoices import Invoice

T = TypeVar("T")


@dataclass
class SocketContext(Context):
    """The context of one websocket: ``connection_params`` is the ``connection_init``
    payload, ``secret`` the credential it carried (``principal`` is set from it)."""

    connection_params: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None


def bearer(params: dict[str, Any]) -> str | None:
    """The credential of a ``connection_init`` payload:
    ``{"authorization": "Bearer <API key or customer token>"}`` ("Authorization" too)."""
    value = params.get("authorization", params.get("Authorization"))
    if not isinstance(value, str):
        return None
    scheme, _, secret = value.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def _still_valid(context: Context) -> None:
    """UNAUTHENTICATED once the socket's credential has expired or been revoked."""
    if not isinstance(context, SocketContext) or context.secret is None:
        return
    services = context.services
    async with services.db.read() as conn:
        found = await authenticate(conn, context.secret, services.clock())
    if found is None:
        raise UnauthenticatedError("the credential of this connection expired or was revoked")


def _fresh(info: Info[Context, Any]) -> Loaders:
    """New loaders for one push: the previous push's cached reads are stale."""
    context = info.context
    context.loaders = Loaders(context.services, context.principal)
    return context.loaders


async def _pushes(
    info: Info[Context, Any],
    principal: Principal,
    customer_id: str,
    topics: tuple[Topic, ...],
    current: Callable[[], Awaitable[T]],
) -> AsyncGenerator[T, None]:
    """``current()`` now, then after each burst of changes of ``topics``."""
    feed = info.context.services.feed
    async with feed.listen(principal.org_id, customer_id, topics) as changes:
        yield await current()
        async for _ in changes:
            await _still_valid(info.context)
            yield await current()


@strawberry.type(
    name="SubscriptionRoot",
    description="Live updates over a websocket (protocol graphql-transport-ws), "
    'authenticated by the `connection_init` payload `{"authorization": "Bearer <key>"}`.',
)
class Subscription:
    @strawberry.subscription(
        description="The customer now, then after each change of its usage (at most every "
        "250 ms): select `usage(...)`, `draftInvoices` or anything else of it."
    )
    async def usage_updated(
        self, info: Info[Context, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[Customer, None]:
        await customers_api.customer(info, customer_id)
        principal = _principal(info)

        async def current() -> Customer:
            _fresh(info)
            return await customers_api.customer(info, customer_id)

        return _pushes(info, principal, str(customer_id), (Topic.USAGE,), current)

    @strawberry.subscription(
        description="The customer's draft invoices now, then after each change of its usage "
        "or balances (at most every 250 ms)."
    )
    async def draft_invoice_updated(
        self, info: Info[Context, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[list[Invoice], None]:
        await customers_api.customer(info, customer_id)
        principal = _principal(info)

        async def current() -> list[Invoice]:
            found: list[Invoice] = await _fresh(info).draft_invoices.load(str(customer_id))
            return found

        topics = (Topic.USAGE, Topic.BALANCE)
        return _pushes(info, principal, str(customer_id), topics, current)

    @strawberry.subscription(
        description="The customer's balances now, then after each change of its balances or "
        "of the usage its drafts draw (at most every 250 ms)."
    )
    async def balance_updated(
        self,
        info: Info[Context, Any],
        customer_id: strawberry.ID,
        include_expired: bool = False,
    ) -> AsyncGenerator[list[Balance], None]:
        await customers_api.customer(info, customer_id)
        principal = _principal(info)

        async def current() -> list[Balance]:
            return await _fresh(info).balances(str(customer_id), include_expired)

        topics = (Topic.BALANCE, Topic.USAGE)
        return _pushes(info, principal, str(customer_id), topics, current)

    @strawberry.subscription(
        description="The alerts that watch the customer, with its states, now and after each "
        "change of state (at most every 250 ms)."
    )
    async def alert_state_changed(
        self, info: Info[Context, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[list[Alert], None]:
        await customers_api.customer(info, customer_id)
        principal = _principal(info)

        async def current() -> list[Alert]:
            found: list[Alert] = await _fresh(info).alerts.load(str(customer_id))
            return found

        return _pushes(info, principal, str(customer_id), (Topic.ALERTS,), current)


def _principal(info: Info[Context, Any]) -> Principal:
    principal = info.context.principal
    assert principal is not None  # customers_api.customer authorized the caller
    return principal
