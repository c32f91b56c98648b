"""API keys, customer tokens and the audit log (SPEC §9)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON


@strawberry.type
class ApiKey:
    id: strawberry.ID
    name: str
    display_prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@strawberry.type(description="A new API key; `secret` is shown this once and never again.")
class CreatedApiKey:
    api_key: ApiKey
    secret: str


@strawberry.type(description="A token that sees one customer only; `token` is shown once.")
class CustomerToken:
    token: str
    customer_id: strawberry.ID
    expires_at: datetime


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    actor: str
    action: str
    object_kind: str
    object_id: str
    changes: JSON
    created_at: datetime


@strawberry.input
class CreateApiKeyInput:
    scopes: list[str]
    name: str = ""
    environment: str = "live"


@strawberry.input
class CreateCustomerTokenInput:
    customer_id: strawberry.ID
    ttl_seconds: int = 3600
