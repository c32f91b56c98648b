"""API keys, customer tokens and the audit log (SPEC §9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import strawberry
from strawberry.types import Info

from models.store import api_keys as store
from models.store.audit import audit_page
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.convert import connection
from schema.access import (
    ApiKey,
    AuditEntry,
    CreateApiKeyInput,
    CreateCustomerTokenInput,
    CreatedApiKey,
    CustomerToken,
)
from schema.pagination import DEFAULT_PAGE, Connection
from schema.views import view


async def api_keys(info: Info[Context, Any]) -> list[ApiKey]:
    principal = require(info, "admin")
    async with read(info) as conn:
        found = await store.list_api_keys(conn, principal.org_id)
    return [view(ApiKey, record) for record in found]


async def create_api_key(info: Info[Context, Any], input: CreateApiKeyInput) -> CreatedApiKey:
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        key_id, secret = await store.create_api_key(
            conn,
            principal.org_id,
            input.scopes,
            info.context.services.clock(),
            name=input.name,
            environment=input.environment,
        )
        await audit("api_key", key_id, {"scopes": sorted(input.scopes), "name": input.name})
        (record,) = await store.list_api_keys(conn, principal.org_id, key_id)
    return CreatedApiKey(api_key=view(ApiKey, record), secret=secret)


async def revoke_api_key(info: Info[Context, Any], id: strawberry.ID) -> ApiKey:
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        if not await store.revoke_api_key(conn, principal.org_id, str(id), now):
            raise not_found("live API key", id)
        await audit("api_key", str(id), {"revoked_at": now.isoformat()})
        (record,) = await store.list_api_keys(conn, principal.org_id, str(id))
    return view(ApiKey, record)


async def create_customer_token(
    info: Info[Context, Any], input: CreateCustomerTokenInput
) -> CustomerToken:
    principal = require(info, "admin")
    customer_id = str(input.customer_id)
    async with mutation(info, principal) as (conn, audit):
        token, expires_at = await store.create_customer_token(
            conn,
            principal.org_id,
            customer_id,
            timedelta(seconds=input.ttl_seconds),
            info.context.services.clock(),
            actor=principal.key_id,
        )
        await audit("customer_token", customer_id, {"expires_at": expires_at.isoformat()})
    return CustomerToken(token=token, customer_id=input.customer_id, expires_at=expires_at)


async def audit_log(
    info: Info[Context, Any],
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    object_id: str | None = None,
) -> Connection[AuditEntry]:
    principal = require(info, "admin")
    async with read(info) as conn:
        found = await audit_page(conn, principal.org_id, first, after, object_id)
    return connection(found, lambda entry: view(AuditEntry, entry))
