"""Per-request GraphQL context: the services, who is calling, and the request's loaders."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from strawberry.types import Info

from billing.errors import ForbiddenError, NotFoundError, UnauthenticatedError
from models.db import DatabaseUnavailable
from models.store.api_keys import Principal, authenticate, record_use, use_is_due
from models.store.audit import record_audit
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from resolvers.graphql.loaders import Loaders
from resolvers.services import Services, services_of

log = logging.getLogger("meterline.access")


@dataclass
class Context:
    services: Services
    principal: Principal | None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.services, self.principal)


def bearer(authorization: str | None) -> str | None:
    """The credential of an ``Authorization`` value ``Bearer <API key or customer token>``
    (the scheme in any case, the credential stripped); None for anything else."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def principal_of(services: Services, authorization: str | None) -> Principal | None:
    """Who sends ``authorization`` (an HTTP ``Authorization`` header, or the same value in a
    websocket's ``connection_init``): None without a valid bearer credential. Sets an API
    key's ``last_used_at`` when it is due (at most once a minute)."""
    secret = bearer(authorization)
    if secret is None:
        return None
    now = services.clock()
    async with services.db.read() as conn:
        principal = await authenticate(conn, secret, now)
    if principal is not None and use_is_due(principal, now):
        try:
            async with services.db.write() as conn:
                await record_use(conn, principal, now)
        except DatabaseUnavailable:  # bookkeeping: a read must not fail for want of it
            log.warning("last_used_at of key %s not recorded: database busy", principal.key_id)
    return principal


async def build_context(request: Request, _response: Any = None) -> Context:
    services = services_of(request)
    return Context(services, await principal_of(services, request.headers.get("authorization")))


def _caller(info: Info[Context, Any]) -> Principal:
    principal = info.context.principal
    if principal is None:
        raise UnauthenticatedError(
            "send a valid API key or customer token as 'Authorization: Bearer …'"
        )
    return principal


def require(info: Info[Context, Any], scope: str) -> Principal:
    """The caller if its API key holds ``scope``; else UNAUTHENTICATED / FORBIDDEN.
    Customer tokens are FORBIDDEN here: they only reach fields that serve one customer."""
    principal = _caller(info)
    if principal.customer_id is not None:
        raise ForbiddenError("a customer token cannot use this field")
    if not principal.can(scope):
        raise ForbiddenError(f"the API key lacks the '{scope}' scope")
    return principal


def require_customer(info: Info[Context, Any], customer_id: str) -> Principal:
    """The caller if it may read ``customer_id``: an API key with ``read``, or a
    customer token of that very customer (any other customer is NOT_FOUND, as if absent)."""
    principal = _caller(info)
    if principal.customer_id is None:
        return require(info, "read")
    if principal.customer_id != customer_id:
        raise not_found("customer", customer_id)
    return principal


def reader(info: Info[Context, Any]) -> Principal:
    """The caller if it may read: an API key with ``read``, or any customer token (whose
    reads the resolver restricts to its customer)."""
    principal = _caller(info)
    return principal if principal.customer_id is not None else require(info, "read")


@asynccontextmanager
async def read(info: Info[Context, Any]) -> AsyncIterator[AsyncConnection]:
    async with info.context.services.db.read() as conn:
        yield conn


@asynccontextmanager
async def mutation(
    info: Info[Context, Any], principal: Principal
) -> AsyncIterator[tuple[AsyncConnection, MutationEffects]]:
    """A unit of work for one mutation; ``audit(...)`` records it, ``audit.notify(...)``
    writes its webhooks and ``audit.changed(...)`` asks for evaluations and pushes, all in
    the same transaction; the outbox is dispatched after the commit."""
    services = info.context.services
    async with services.db.write() as conn:
        audit = MutationEffects(conn, principal, info)
        yield conn, audit
    await audit.outbox.dispatch(services.redis)


@dataclass
class MutationEffects:
    """What a mutation writes in its own transaction (its audit entry: call the object;
    its webhooks: :meth:`notify`) and asks for after the commit (alert evaluations and
    subscription pushes of the customers it :meth:`changed`)."""

    conn: AsyncConnection
    principal: Principal
    info: Info[Context, Any]
    outbox: Outbox = field(default_factory=Outbox)

    async def changed(self, customer_id: str) -> None:
        """The customer's usage or balances changed: re-evaluate its alerts, push to its
        subscribers."""
        await self.evaluate([customer_id])
        self.outbox.push(self.principal.org_id, (Topic.BALANCE, Topic.USAGE), [customer_id])

    async def evaluate(self, customer_ids: Iterable[str]) -> None:
        """Re-evaluate these customers' alerts after the commit."""
        now = self.info.context.services.clock()
        await self.outbox.evaluate(self.conn, self.principal.org_id, customer_ids, now)

    async def notify(self, event: WebhookEvent) -> str:
        """Write a webhook message caused by this mutation; returns its id."""
        now = self.info.context.services.clock()
        return await self.outbox.emit(self.conn, self.principal.org_id, event, now)

    async def __call__(self, kind: str, object_id: str, changes: Any) -> None:
        """Record this mutation (who, what, when, object, changes)."""
        actor = self.principal.key_id
        if self.principal.customer_id is not None:
            actor = f"{actor} (customer {self.principal.customer_id})"
        await record_audit(
            self.conn,
            self.principal.org_id,
            actor=actor,
            action=self.info.field_name,
            object_kind=kind,
            object_id=object_id,
            changes=changes,
            now=self.info.context.services.clock(),
        )


def not_found(kind: str, object_id: str) -> NotFoundError:
    return NotFoundError(f"no {kind} {object_id}")
