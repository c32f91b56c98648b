"""The webhook hub (SPEC §10) and offset notification rules (SPEC §8)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from billing.errors import ForbiddenError
from billing.schedules import LifecycleEvent

strawberry.enum(LifecycleEvent, description="A time-based system event offsets can follow.")


@strawberry.enum
class WebhookDeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@strawberry.type(description="Where webhooks are sent; no event types means every type.")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None = strawberry.field(
        description="Start of the current run of failed attempts (null after a success)."
    )
    created_at: datetime
    updated_at: datetime
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until when the secret replaced by the last rotation still signs."
    )
    signing_secret: strawberry.Private[str]

    @strawberry.field(description="The signing secret (`whsec_…`): admin keys only.")
    def secret(self, info: Info[Any, Any]) -> str | None:
        principal = info.context.principal
        if principal is None or principal.customer_id is not None or not principal.can("admin"):
            raise ForbiddenError("only an admin key may read an endpoint's secret")
        return self.signing_secret


@strawberry.type(description="One try at delivering a message to an endpoint.")
class WebhookAttempt:
    id: strawberry.ID
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    response_body: str = strawberry.field(description="The first 4 KiB of the response.")
    error: str | None


@strawberry.type(description="A message on its way to one endpoint.")
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime
    attempt_log: list[WebhookAttempt] = strawberry.field(description="Oldest first.")


@strawberry.type(description="A notification written to the outbox (its id is `webhook-id`).")
class WebhookMessage:
    id: strawberry.ID
    type: str
    customer_id: strawberry.ID | None
    created_at: datetime
    payload: JSON = strawberry.field(description="The body sent: {id, type, created_at, data}.")
    deliveries: list[WebhookDelivery]


@strawberry.type(description="Fire `<trigger>.offset` at each trigger's time plus `offset`.")
class OffsetRule:
    id: strawberry.ID
    name: str
    trigger: LifecycleEvent
    offset: str = strawberry.field(description='A signed ISO-8601 duration ("-P7D", "PT2H").')
    created_at: datetime


@strawberry.input
class CreateWebhookEndpointInput:
    url: str
    event_types: list[str] = strawberry.field(default_factory=list)
    description: str = ""
    uniqueness_key: str | None = None


@strawberry.input(description="Fields to change (null: unchanged).")
class UpdateWebhookEndpointInput:
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


@strawberry.input
class CreateOffsetRuleInput:
    name: str
    trigger: LifecycleEvent
    offset: str
    uniqueness_key: str | None = None
