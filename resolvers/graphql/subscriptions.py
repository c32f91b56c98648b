"""Subscriptions over graphql-transport-ws: a customer's usage, drafts, balances and alerts,
pushed on subscribe and again after each burst of changes (at most one push per 250 ms).

The socket is authenticated once, in ``connection_init``; every push re-reads the database
with fresh loaders and first checks that the credential is still valid (a customer token
expires, a key can be revoked).

A field's first push is read after its channels are subscribed, so a change committed
meanwhile is never missed; it is read before the resolver returns, so a refusal
(UNAUTHENTICATED, FORBIDDEN, NOT_FOUND) is the subscription's error, as for ``customer(id)``,
rather than a failed push."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from billing.errors import RateLimitedError, UnauthenticatedError
from models.store.api_keys import Principal, authenticate
from notifications.pubsub import Topic
from resolvers.graphql import customers as customers_api
from resolvers.graphql.context import Context, bearer, require_customer
from resolvers.graphql.loaders import Loaders
from resolvers.rate_limits import retry_after
from schema.alerts import Alert
from schema.customers import Balance, Customer
from schema.invoices import Invoice

T = TypeVar("T")


@dataclass
class SocketContext(Context):
    """The context of one websocket: ``connection_params`` is the ``connection_init``
    payload, whose ``authorization`` authenticated the socket (``principal`` is set from it)."""

    connection_params: dict[str, Any] = field(default_factory=dict)

    @property
    def authorization(self) -> str | None:
        """The payload's ``authorization`` ("Authorization" too), as an HTTP header would
        carry it: ``"Bearer <API key or customer token>"``; None unless a string."""
        params = self.connection_params
        value = params.get("authorization", params.get("Authorization"))
        return value if isinstance(value, str) else None


async def _still_valid(context: Context) -> None:
    """UNAUTHENTICATED once the socket's credential has expired or been revoked."""
    if not isinstance(context, SocketContext):
        return
    secret = bearer(context.authorization)
    if secret is None:
        return
    services = context.services
    async with services.db.read() as conn:
        found = await authenticate(conn, secret, services.clock())
    if found is None:
        raise UnauthenticatedError("the credential of this connection expired or was revoked")


async def _within_rate(context: Context) -> None:
    """RATE_LIMITED when the socket's credential has used up its requests: each
    subscription started takes one, as an HTTP request would."""
    secret = bearer(context.authorization) if isinstance(context, SocketContext) else None
    if secret is None:
        return
    wait = await context.services.rate_limiter.wait(secret)
    if wait is not None:
        raise RateLimitedError(
            f"too many requests with this credential; retry in {retry_after(wait)} s"
        )


def _fresh(info: Info[Context, Any]) -> Loaders:
    """New loaders for one push: the previous push's cached reads are stale."""
    context = info.context
    context.loaders = Loaders(context.services, context.principal)
    return context.loaders


async def _live(
    info: Info[Context, Any],
    customer_id: strawberry.ID,
    topics: tuple[Topic, ...],
    current: Callable[[Loaders], Awaitable[T]],
    first: Callable[[Customer], T] | None = None,
) -> AsyncGenerator[T, None]:
    """The pushes of one field: ``current(loaders)`` now, then after each burst of changes of
    ``topics``. The first push is ``first(customer)`` when given: the customer read to
    authorize the caller, not read a second time."""
    principal = require_customer(info, str(customer_id))
    await _within_rate(info.context)
    pushes = _pushes(info, principal, customer_id, topics, current, first)
    opening = await anext(pushes)  # raises a refusal here, before the stream starts
    return _resumed(opening, pushes)


async def _pushes(
    info: Info[Context, Any],
    principal: Principal,
    customer_id: strawberry.ID,
    topics: tuple[Topic, ...],
    current: Callable[[Loaders], Awaitable[T]],
    first: Callable[[Customer], T] | None,
) -> AsyncGenerator[T, None]:
    """Subscribe, authorize and push (see :func:`_live`); each later push first checks the
    socket's credential and reads with fresh loaders."""
    feed = info.context.services.feed
    async with feed.listen(principal.org_id, str(customer_id), topics) as changes:
        customer = await customers_api.customer(info, customer_id)  # authorized as customer(id)
        yield first(customer) if first is not None else await current(_fresh(info))
        async for _ in changes:
            await _still_valid(info.context)
            yield await current(_fresh(info))


async def _resumed(opening: T, pushes: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """``opening``, then the rest of ``pushes``, closed when this stream is (were this one
    dropped unstarted, asyncio's finalizer of async generators still closes ``pushes``, which
    has started, and so its subscription)."""
    async with contextlib.aclosing(pushes):
        yield opening
        async for value in pushes:
            yield value


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
        async def current(_: Loaders) -> Customer:
            return await customers_api.customer(info, customer_id)

        return await _live(info, customer_id, (Topic.USAGE,), current, first=lambda c: c)

    @strawberry.subscription(
        description="The customer's draft invoices now, then after each change of its usage "
        "or balances (at most every 250 ms)."
    )
    async def draft_invoice_updated(
        self, info: Info[Context, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[list[Invoice], None]:
        async def current(loaders: Loaders) -> list[Invoice]:
            found: list[Invoice] = await loaders.draft_invoices.load(str(customer_id))
            return found

        return await _live(info, customer_id, (Topic.USAGE, Topic.BALANCE), current)

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
        async def current(loaders: Loaders) -> list[Balance]:
            return await loaders.balances(str(customer_id), include_expired)

        return await _live(info, customer_id, (Topic.BALANCE, Topic.USAGE), current)

    @strawberry.subscription(
        description="The alerts that watch the customer, with its states, now and after each "
        "change of state (at most every 250 ms)."
    )
    async def alert_state_changed(
        self, info: Info[Context, Any], customer_id: strawberry.ID
    ) -> AsyncGenerator[list[Alert], None]:
        async def current(loaders: Loaders) -> list[Alert]:
            found: list[Alert] = await loaders.alerts.load(str(customer_id))
            return found

        return await _live(info, customer_id, (Topic.ALERTS,), current)
