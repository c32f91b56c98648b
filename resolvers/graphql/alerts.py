"""Alerts: admins manage every alert; a customer token creates and archives budget
alerts (spend, usage, invoice total) for its own customer."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.alerts import AlertRule, AlertType
from billing.errors import ForbiddenError
from models.codec import to_json
from models.store import alerts as store
from models.store.alerts import AlertRecord
from models.store.customers import check_customer, live_customer_ids
from notifications.pubsub import Topic
from resolvers.graphql.context import (
    Context,
    mutation,
    not_found,
    read,
    require,
    require_customer,
)
from resolvers.graphql.convert import core_of, plain
from resolvers.graphql.loaders import alert_view
from schema.alerts import Alert, CreateAlertInput

BUDGET_TYPES = frozenset(
    {
        AlertType.SPEND_THRESHOLD_REACHED,
        AlertType.USAGE_THRESHOLD_REACHED,
        AlertType.INVOICE_TOTAL_REACHED,
    }
)


async def alerts(info: Info[Context, Any], include_archived: bool = False) -> list[Alert]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.alerts_of(conn, principal.org_id, include_archived=include_archived)
    return [alert_view(record) for record in found]


async def create_alert(info: Info[Context, Any], input: CreateAlertInput) -> Alert:
    principal = info.context.principal
    if principal is not None and principal.customer_id is not None:
        if input.customer_id is None or input.alert_type not in BUDGET_TYPES:
            raise ForbiddenError(
                "a customer token creates spend, usage or invoice total alerts for its customer"
            )
        principal = require_customer(info, str(input.customer_id))
    else:
        principal = require(info, "admin")
    rule = core_of(AlertRule, {**plain(input), "id": ""})
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        stored = await store.create_alert(
            conn,
            principal.org_id,
            rule,
            now,
            actor=principal.key_id,
            uniqueness_key=input.uniqueness_key,
        )
        await audit("alert", stored.id, to_json(stored))
        await audit.evaluate(
            [stored.customer_id]
            if stored.customer_id is not None
            else await live_customer_ids(conn, principal.org_id)
        )
    return alert_view(AlertRecord(stored, now, None, ()))


async def archive_alert(info: Info[Context, Any], id: strawberry.ID) -> Alert:
    principal = info.context.principal
    if principal is None or principal.customer_id is None:
        principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        if not await store.archive_alert(
            conn, principal.org_id, str(id), now, principal.customer_id
        ):
            raise not_found("alert", id)
        await audit("alert", str(id), {"archived_at": now.isoformat()})
        (record,) = await store.alerts_of(
            conn, principal.org_id, alert_id=str(id), include_archived=True
        )
        watching = record.rule.customer_id
        audit.outbox.push(  # subscribers of alertStateChanged see it go
            principal.org_id,
            (Topic.ALERTS,),
            [watching] if watching is not None else await live_customer_ids(conn, principal.org_id),
        )
    return alert_view(record)


async def reset_alert(
    info: Info[Context, Any], alert_id: strawberry.ID, customer_id: strawberry.ID
) -> Alert:
    """Clear the alert's state for the customer and evaluate it again: a customer over the
    threshold is notified again."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        found = await store.alerts_of(conn, principal.org_id, alert_id=str(alert_id))
        if not found or found[0].rule.customer_id not in (None, str(customer_id)):
            raise not_found("alert", alert_id)
        await check_customer(conn, principal.org_id, str(customer_id))
        await store.reset_statuses(conn, principal.org_id, str(alert_id), str(customer_id), now)
        await audit("alert", str(alert_id), {"reset_for_customer": str(customer_id)})
        await audit.evaluate([str(customer_id)])
    return alert_view(found[0])
