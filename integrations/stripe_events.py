"""Stripe's webhooks (SPEC §11): verify an event with the organizations' signing secrets,
then move the payment status of the invoice it is about and emit our own webhook.

Stripe delivers at least once and in any order: an event id is handled once, ``paid``
and ``void`` are final (see :func:`billing.provider_invoice.next_payment_status`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from arq.connections import ArqRedis

from billing.provider_invoice import PROVIDER_EVENTS, PaymentStatus
from models.db import Database
from models.store.invoice_syncs import report_payment
from models.store.invoices import invoice_by_id
from models.store.stripe_accounts import first_sight, webhook_secrets
from notifications.catalog import EventType, invoice_at_provider
from notifications.outbox import Outbox

OUR_EVENTS = {
    PaymentStatus.PAID: EventType.INVOICE_PAID,
    PaymentStatus.PAYMENT_FAILED: EventType.INVOICE_PAYMENT_FAILED,
}


@dataclass(frozen=True)
class StripeEvent:
    """A verified Stripe webhook event: the organization whose signing secret verified it."""

    org_id: str
    id: str
    type: str
    object: dict[str, Any]


def verify_event(
    payload: bytes, signature: str | None, secrets: Sequence[tuple[str, str]]
) -> list[StripeEvent]:
    """The event, once per organization whose signing secret verifies ``payload`` with
    ``signature`` (the ``Stripe-Signature`` header, within Stripe's 5-minute tolerance);
    several organizations fed by one Stripe account share its secret. Empty when none
    does or the payload is not an event."""
    if not signature:
        return []
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return []
    verified = []
    for org_id, secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, tolerance=stripe.Webhook.DEFAULT_TOLERANCE
            )
        except stripe.SignatureVerificationError:
            continue
        verified.append(org_id)
    if not verified:
        return []
    try:
        data = json.loads(text)
        event_id, type, found = str(data["id"]), str(data["type"]), data["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return []
    if not isinstance(found, dict):
        return []
    return [StripeEvent(org_id, event_id, type, found) for org_id in verified]


async def read_event(db: Database, payload: bytes, signature: str | None) -> list[StripeEvent]:
    """:func:`verify_event` against every signing secret configured."""
    async with db.read() as conn:
        secrets = await webhook_secrets(conn)
    return verify_event(payload, signature, secrets)


OUTCOMES = ("updated", "unchanged", "duplicate", "ignored", "unknown_invoice")
"""What handling an event can come to, the most telling first."""


async def apply_event(
    db: Database, pool: ArqRedis, clock: Callable[[], datetime], events: Sequence[StripeEvent]
) -> str:
    """Handle a verified event for each organization it verified for (see
    :func:`apply_for`); returns the most telling outcome."""
    outcomes = [await apply_for(db, pool, clock, event) for event in events]
    return min(outcomes, key=OUTCOMES.index)


async def apply_for(
    db: Database, pool: ArqRedis, clock: Callable[[], datetime], event: StripeEvent
) -> str:
    """Handle a verified event once for its organization: ``invoice.paid`` /
    ``invoice.payment_succeeded``, ``invoice.payment_failed`` /
    ``invoice.marked_uncollectible`` and ``invoice.voided`` move the payment status of the
    invoice Meterline pushed; ``paid`` and each reported failure emit ``invoice.paid`` /
    ``invoice.payment_failed``. Returns one of :data:`OUTCOMES`."""
    reported = PROVIDER_EVENTS.get(event.type)
    now = clock()
    outbox = Outbox()
    async with db.write() as conn:
        if not await first_sight(conn, event.org_id, event.id, event.type, now):
            return "duplicate"
        stripe_invoice_id = event.object.get("id")
        if reported is None or not isinstance(stripe_invoice_id, str):
            return "ignored"
        moved = await report_payment(conn, event.org_id, stripe_invoice_id, reported, now)
        if moved is None:
            return "unknown_invoice"
        before, after = moved
        if after.payment_status is not reported:
            return "unchanged"  # a late event about a settled invoice
        kind = OUR_EVENTS.get(reported)
        changed = after.payment_status is not before.payment_status
        # each failed attempt Stripe reports is news; a payment only once
        if kind is None or not (changed or reported is PaymentStatus.PAYMENT_FAILED):
            return "updated" if changed else "unchanged"
        stored = await invoice_by_id(conn, event.org_id, after.invoice_id)
        assert stored is not None
        message = invoice_at_provider(
            kind,
            stored.id,
            stored.invoice,
            stripe_invoice_id,
            payment_status=after.payment_status.value,
        )
        await outbox.emit(conn, event.org_id, message, now)
    await outbox.dispatch(pool)
    return "updated"
