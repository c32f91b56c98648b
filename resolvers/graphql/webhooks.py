"""The webhook hub (SPEC §10): endpoints (admins manage them, read keys list them), the
message log with each message's deliveries and attempts, and replays."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types import Info

from billing.errors import ValidationError
from models.store import webhook_endpoints as store
from models.store.webhook_deliveries import replay_failed, replay_message
from models.store.webhook_endpoints import Endpoint
from models.store.webhook_messages import Message, attempts_of, deliveries_of, messages_page
from models.store.webhook_messages import message_by_id as stored_message
from notifications.catalog import EVENT_TYPES
from notifications.signing import new_secret
from notifications.ssrf import check_destination
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.convert import connection
from schema.pagination import DEFAULT_PAGE, Connection
from schema.views import view
from schema.webhooks import (
    CreateWebhookEndpointInput,
    UpdateWebhookEndpointInput,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookMessage,
)

MAX_DESCRIPTION = 500


def endpoint_view(endpoint: Endpoint) -> WebhookEndpoint:
    until = endpoint.previous_secret_until if endpoint.previous_secret else None
    return view(
        WebhookEndpoint,
        endpoint,
        event_types=list(endpoint.event_types),
        previous_secret_expires_at=until,
        signing_secret=endpoint.secret,
    )


def _changes(endpoint: Endpoint) -> dict[str, Any]:
    """What the audit log records of an endpoint (never its secret)."""
    return {
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def _check(event_types: Sequence[str] | None, description: str | None) -> None:
    unknown = sorted(set(event_types or ()) - EVENT_TYPES)
    if unknown:
        raise ValidationError("event_types", f"unknown event types: {', '.join(unknown)}")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise ValidationError("description", f"at most {MAX_DESCRIPTION} characters")


async def _check_url(info: Info[Context, Any], url: str) -> None:
    """The URL must be http(s) and lead to public addresses (unless the installation
    allows the host): resolved before the transaction opens."""
    await check_destination(url, info.context.services.webhook_allowed_private)


async def _messages_view(
    conn: AsyncConnection, org_id: str, found: Sequence[Message]
) -> dict[str, WebhookMessage]:
    """Per message id, its view with every delivery and attempt (two queries in all)."""
    deliveries = await deliveries_of(conn, org_id, [m.id for m in found])
    delivery_ids = [d.id for ds in deliveries.values() for d in ds]
    attempts = await attempts_of(conn, org_id, delivery_ids)
    return {
        message.id: view(
            WebhookMessage,
            message,
            payload=orjson.loads(message.body),
            deliveries=[
                view(
                    WebhookDelivery,
                    delivery,
                    status=WebhookDeliveryStatus(delivery.status),
                    attempt_log=[view(WebhookAttempt, a) for a in attempts[delivery.id]],
                )
                for delivery in deliveries[message.id]
            ],
        )
        for message in found
    }


async def _message(conn: AsyncConnection, org_id: str, message_id: str) -> WebhookMessage:
    found = await stored_message(conn, org_id, message_id)
    if found is None:
        raise not_found("webhook message", message_id)
    return (await _messages_view(conn, org_id, [found]))[found.id]


async def webhook_endpoints(
    info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[WebhookEndpoint]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.endpoints_page(conn, principal.org_id, first, after)
    return connection(found, endpoint_view)


async def webhook_endpoint(info: Info[Context, Any], id: strawberry.ID) -> WebhookEndpoint:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.endpoint_by_id(conn, principal.org_id, str(id))
    return endpoint_view(found)


async def webhook_messages(
    info: Info[Context, Any],
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    type: str | None = None,
    customer_id: strawberry.ID | None = None,
    since: datetime | None = None,
) -> Connection[WebhookMessage]:
    """The message log, oldest first, optionally of one type, customer, or since a time."""
    principal = require(info, "read")
    if type is not None and type not in EVENT_TYPES:
        raise ValidationError("type", f"unknown event type {type!r}")
    async with read(info) as conn:
        rows, has_next = await messages_page(
            conn,
            principal.org_id,
            first,
            after,
            type=type,
            customer_id=None if customer_id is None else str(customer_id),
            since=since,
        )
        views = await _messages_view(conn, principal.org_id, [m for _, m in rows])
    return connection((rows, has_next), lambda message: views[message.id])


async def webhook_message(info: Info[Context, Any], id: strawberry.ID) -> WebhookMessage:
    principal = require(info, "read")
    async with read(info) as conn:
        return await _message(conn, principal.org_id, str(id))


async def create_webhook_endpoint(
    info: Info[Context, Any], input: CreateWebhookEndpointInput
) -> WebhookEndpoint:
    principal = require(info, "admin")
    _check(input.event_types, input.description)
    await _check_url(info, input.url)
    async with mutation(info, principal) as (conn, audit):
        created = await store.create_endpoint(
            conn,
            principal.org_id,
            url=input.url,
            event_types=input.event_types,
            description=input.description,
            secret=new_secret(),
            now=info.context.services.clock(),
            uniqueness_key=input.uniqueness_key,
        )
        await audit("webhook_endpoint", created.id, _changes(created))
    return endpoint_view(created)


async def update_webhook_endpoint(
    info: Info[Context, Any], id: strawberry.ID, input: UpdateWebhookEndpointInput
) -> WebhookEndpoint:
    """Change an endpoint; enabling it again clears its failure run."""
    principal = require(info, "admin")
    _check(input.event_types, input.description)
    if input.url is not None:
        await _check_url(info, input.url)
    async with mutation(info, principal) as (conn, audit):
        updated = await store.update_endpoint(
            conn,
            principal.org_id,
            str(id),
            info.context.services.clock(),
            url=input.url,
            event_types=input.event_types,
            description=input.description,
            enabled=input.enabled,
        )
        await audit("webhook_endpoint", updated.id, _changes(updated))
    return endpoint_view(updated)


async def delete_webhook_endpoint(info: Info[Context, Any], id: strawberry.ID) -> WebhookEndpoint:
    """Remove an endpoint: nothing more is sent to it (its delivery log stays)."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        found = await store.endpoint_by_id(conn, principal.org_id, str(id))
        await store.delete_endpoint(conn, principal.org_id, found.id, now)
        await audit("webhook_endpoint", found.id, {"deleted_at": now.isoformat()})
    return endpoint_view(found)


async def rotate_webhook_endpoint_secret(
    info: Info[Context, Any], id: strawberry.ID
) -> WebhookEndpoint:
    """A new secret signs from now on; the replaced one keeps signing alongside it for the
    installation's overlap (24 h by default)."""
    principal = require(info, "admin")
    services = info.context.services
    async with mutation(info, principal) as (conn, audit):
        rotated = await store.rotate_secret(
            conn,
            principal.org_id,
            str(id),
            new_secret(),
            services.clock(),
            services.webhook_secret_overlap,
        )
        until = rotated.previous_secret_until
        await audit(
            "webhook_endpoint",
            rotated.id,
            {"previous_secret_expires_at": None if until is None else until.isoformat()},
        )
    return endpoint_view(rotated)


async def replay_webhook_message(
    info: Info[Context, Any], message_id: strawberry.ID, endpoint_id: strawberry.ID | None = None
) -> WebhookMessage:
    """Send a message again now: to one endpoint (even one that never got it), else to
    every endpoint it was delivered to."""
    principal = require(info, "admin")
    target = None if endpoint_id is None else str(endpoint_id)
    async with mutation(info, principal) as (conn, audit):
        due = await replay_message(
            conn, principal.org_id, str(message_id), target, info.context.services.clock()
        )
        audit.outbox.add_due(due)
        await audit(
            "webhook_message",
            str(message_id),
            {"replayed_to": target, "deliveries": [delivery_id for delivery_id, _ in due]},
        )
        return await _message(conn, principal.org_id, str(message_id))


async def replay_failed_webhook_messages(
    info: Info[Context, Any], endpoint_id: strawberry.ID, since: datetime
) -> int:
    """Send again every failed delivery to the endpoint of a message created at or after
    ``since``; returns how many were re-queued."""
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        due = await replay_failed(
            conn, principal.org_id, str(endpoint_id), since, info.context.services.clock()
        )
        audit.outbox.add_due(due)
        await audit(
            "webhook_endpoint",
            str(endpoint_id),
            {"replayed_failed_since": since.isoformat(), "deliveries": len(due)},
        )
    return len(due)
