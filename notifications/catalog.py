"""The webhook event catalog (SPEC §8): every type, and one payload builder per kind of
cause. A payload is ``{"id", "type", "created_at", "data"}``; money and quantities are
decimal strings, times RFC 3339 UTC; at most 64 KiB."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from billing.alerts import AlertRule, AlertTransition
from billing.contracts import Contract
from billing.invoices import Invoice
from billing.schedules import LifecycleEvent, Occurrence, OffsetOccurrence

MAX_PAYLOAD_BYTES = 64 * 1024


class EventType(StrEnum):
    """The system events caused by a change; the time-based ones are
    :class:`billing.schedules.LifecycleEvent`."""

    CUSTOMER_CREATED = "customer.created"
    CONTRACT_CREATED = "contract.created"
    CONTRACT_EDITED = "contract.edited"
    CONTRACT_ARCHIVED = "contract.archived"
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_PAID = "invoice.paid"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    INVOICE_BILLING_PROVIDER_ERROR = "invoice.billing_provider_error"
    ALERT_TRIGGERED = "alert.triggered"
    ALERT_RESOLVED = "alert.resolved"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"


EVENT_TYPES: frozenset[str] = frozenset(
    [t.value for t in EventType]
    + [t.value for t in LifecycleEvent]
    + [f"{t.value}.offset" for t in LifecycleEvent]
)
"""Every type an endpoint can filter on (offset notifications are ``<trigger>.offset``)."""


@dataclass(frozen=True)
class WebhookEvent:
    """A notification to write to the outbox: its type, its data and the customer it is
    about (None for organization-level events)."""

    type: str
    data: dict[str, Any]
    customer_id: str | None = None


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def payload(message_id: str, event: WebhookEvent, created_at: datetime) -> str:
    """The message body sent to every endpoint. Raises ``ValueError`` past 64 KiB."""
    body = orjson.dumps(
        {"id": message_id, "type": event.type, "created_at": created_at, "data": event.data},
        default=_default,
        option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a {event.type} payload is {len(body)} bytes, over 64 KiB")
    return body.decode()


def customer_created(customer_id: str, name: str) -> WebhookEvent:
    """``customer.created``, about the new customer: its ``customer_id`` and its ``name``
    as created (aliases and custom fields are read with ``customer(id)``)."""
    return WebhookEvent(
        EventType.CUSTOMER_CREATED, {"customer_id": customer_id, "name": name}, customer_id
    )


def contract_changed(kind: EventType, contract: Contract) -> WebhookEvent:
    """``contract.created`` / ``contract.edited`` / ``contract.archived``."""
    return WebhookEvent(
        kind,
        {
            "contract_id": contract.id,
            "customer_id": contract.customer_id,
            "rate_card_id": contract.rate_card_id,
            "starting_at": contract.starting_at,
            "ending_before": contract.ending_before,
        },
        contract.customer_id,
    )


def invoice_changed(
    kind: EventType,
    invoice_id: str,
    invoice: Invoice,
    late_events: int = 0,
    replaces_invoice_id: str | None = None,
) -> WebhookEvent:
    """``invoice.finalized`` / ``invoice.voided``: the invoice's figures, not its lines
    (read them with the ``invoice(id)`` query)."""
    return WebhookEvent(
        kind,
        {
            "invoice_id": invoice_id,
            "customer_id": invoice.customer_id,
            "contract_id": invoice.contract_id,
            "status": invoice.status.value,
            "currency": invoice.currency,
            "starting_at": invoice.starting_at,
            "ending_before": invoice.ending_before,
            "subtotal": invoice.subtotal,
            "total": invoice.total,
            "line_count": len(invoice.lines),
            "late_events": late_events,
            "replaces_invoice_id": replaces_invoice_id,
        },
        invoice.customer_id,
    )


def invoice_at_provider(
    kind: EventType,
    invoice_id: str,
    invoice: Invoice,
    stripe_invoice_id: str | None,
    *,
    payment_status: str,
    error: str | None = None,
) -> WebhookEvent:
    """``invoice.paid`` / ``invoice.payment_failed`` (Stripe reported a payment or its
    failure) and ``invoice.billing_provider_error`` (the push to Stripe failed for good,
    or Stripe's total differs from ours; ``error`` says which): the invoice's figures with
    the provider, its invoice id there and the payment status."""
    event = invoice_changed(kind, invoice_id, invoice)
    data = {
        **event.data,
        "provider": "stripe",
        "provider_invoice_id": stripe_invoice_id,
        "payment_status": payment_status,
    }
    if error is not None:
        data["error"] = error
    return WebhookEvent(kind, data, invoice.customer_id)


def alert_transition(rule: AlertRule, transition: AlertTransition) -> WebhookEvent:
    """``alert.triggered`` / ``alert.resolved`` for one (alert, customer, group values);
    the transition must carry a notification."""
    assert transition.notification is not None
    status = transition.status
    return WebhookEvent(
        transition.notification.value,
        {
            "alert_id": rule.id,
            "alert_name": rule.name,
            "alert_type": rule.alert_type.value,
            "customer_id": status.customer_id,
            "group": dict(status.group),
            "state": status.state.value,
            "threshold": rule.threshold,
            "value": transition.value,
        },
        status.customer_id,
    )


def lifecycle(occurrence: Occurrence, customer_id: str) -> WebhookEvent:
    """A time-based system event (``contract.started``, ``credit.segment_ended`` ...)."""
    return WebhookEvent(
        occurrence.type.value,
        {
            "contract_id": occurrence.contract_id,
            "customer_id": customer_id,
            "object_id": occurrence.object_id,
            "at": occurrence.at,
        },
        customer_id,
    )


def offset_notification(due: OffsetOccurrence, customer_id: str) -> WebhookEvent:
    """``<trigger>.offset``: the trigger's data plus the rule's ``offset_id`` and
    ``offset``, sent at trigger time + offset."""
    trigger = lifecycle(due.occurrence, customer_id)
    data = {**trigger.data, "offset_id": due.rule_id, "offset": due.offset, "due_at": due.at}
    return WebhookEvent(due.type, data, customer_id)


def endpoint_disabled(endpoint_id: str, url: str, reason: str) -> WebhookEvent:
    """``webhook_endpoint.disabled``, an organization-level event (no customer), written
    once per disabling: the endpoint's ``endpoint_id`` and ``url``, and the ``reason`` in
    words, as its ``disabledReason`` holds it (a 410 Gone, or failures since a UTC time).
    The endpoint, disabled in the same transaction, is not sent it."""
    return WebhookEvent(
        EventType.WEBHOOK_ENDPOINT_DISABLED,
        {"endpoint_id": endpoint_id, "url": url, "reason": reason},
    )
