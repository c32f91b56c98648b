"""Customers: list, read (API keys, or a customer token for its own customer), create,
update, link to Stripe."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.types import Info

from billing.errors import ValidationError
from models.store import customers as store
from models.store.customers import CustomerRecord
from notifications.catalog import customer_created
from resolvers.graphql.context import (
    Context,
    mutation,
    not_found,
    read,
    require,
    require_customer,
)
from resolvers.graphql.convert import connection
from schema.customers import (
    BillingProviderInput,
    CreateCustomerInput,
    Customer,
    UpdateCustomerInput,
)
from schema.pagination import DEFAULT_PAGE, Connection
from schema.views import view


def _fields(value: object) -> dict[str, Any] | None:
    """Custom fields must be a JSON object."""
    if value is not None and not isinstance(value, dict):
        raise ValidationError("custom_fields", "must be a JSON object")
    return value


def customer_view(record: CustomerRecord) -> Customer:
    return view(Customer, record)


async def _stored(conn: AsyncConnection, org_id: str, customer_id: str) -> Customer:
    found = await store.customers_by_id(conn, org_id, [customer_id])
    if customer_id not in found:
        raise not_found("customer", customer_id)
    return customer_view(found[customer_id])


async def customers(
    info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[Customer]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.customers_page(conn, principal.org_id, first, after)
    return connection(found, customer_view)


async def customer(info: Info[Context, Any], id: strawberry.ID) -> Customer:
    principal = require_customer(info, str(id))
    async with read(info) as conn:
        return await _stored(conn, principal.org_id, str(id))


async def create_customer(info: Info[Context, Any], input: CreateCustomerInput) -> Customer:
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        customer_id = await store.create_customer(
            conn,
            principal.org_id,
            input.name,
            info.context.services.clock(),
            ingest_aliases=input.ingest_aliases,
            custom_fields=_fields(input.custom_fields),
            stripe_customer_id=input.stripe_customer_id,
            stripe_collection_method=input.stripe_collection_method,
            uniqueness_key=input.uniqueness_key,
        )
        await audit(
            "customer",
            customer_id,
            {
                "name": input.name,
                "ingest_aliases": input.ingest_aliases,
                "custom_fields": input.custom_fields,
                "stripe_customer_id": input.stripe_customer_id,
            },
        )
        await audit.notify(customer_created(customer_id, input.name))
        return await _stored(conn, principal.org_id, customer_id)


async def update_customer(info: Info[Context, Any], input: UpdateCustomerInput) -> Customer:
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        await store.update_customer(
            conn,
            principal.org_id,
            str(input.id),
            name=input.name,
            add_ingest_aliases=input.add_ingest_aliases,
            custom_fields=_fields(input.custom_fields),
        )
        await audit(
            "customer",
            str(input.id),
            {
                "name": input.name,
                "add_ingest_aliases": input.add_ingest_aliases,
                "custom_fields": input.custom_fields,
            },
        )
        if input.add_ingest_aliases:  # claimed stored events change usage
            await audit.changed(str(input.id))
        return await _stored(conn, principal.org_id, str(input.id))


async def set_billing_provider(info: Info[Context, Any], input: BillingProviderInput) -> Customer:
    principal = require(info, "admin")
    link = (input.stripe_customer_id, input.stripe_collection_method)
    async with mutation(info, principal) as (conn, audit):
        await store.update_customer(conn, principal.org_id, str(input.customer_id), stripe=link)
        await audit(
            "customer",
            str(input.customer_id),
            {"stripe_customer_id": link[0], "stripe_collection_method": link[1]},
        )
        return await _stored(conn, principal.org_id, str(input.customer_id))
