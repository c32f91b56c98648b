"""Stripe's payment webhooks (SPEC §11): ``POST /webhooks/stripe`` verified with the
organizations' signing secrets, moving the pushed invoice's payment status and emitting our
own ``invoice.paid`` / ``invoice.payment_failed`` webhooks; end to end against localstripe."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests import stripe_support
from tests.api.live import app_of, serving
from tests.api.stripe_flow import (
    SET_STRIPE,
    WEBHOOK_SECRET,
    at_provider,
    finalize_april,
    post_stripe_event,
    set_stripe,
    signed,
    stripe_event,
    stripe_shop,
)
from tests.api.support import data
from tests.api.worker_support import messages
from tests.conftest import Env

localstripe_url = stripe_support.localstripe_url  # the session's localstripe (a fixture)
OTHER_SECRET = "whsec_someone_else"
PAID_TYPES = {"invoice.paid", "invoice.payment_succeeded"}
MESSAGES = "query($type: String) { webhookMessages(first: 100, type: $type) { nodes { payload } } }"


def signature(body: bytes, secret: str = WEBHOOK_SECRET, stamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``body`` signed at ``stamp`` (now by default)."""
    stamp = int(time.time()) if stamp is None else stamp
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


async def deliver(env: Env, event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> str:
    """Post ``event`` signed with ``secret``; it must be acknowledged. Returns the outcome."""
    response = await post_stripe_event(env, *signed(event, secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["event_id"]) == (True, event["id"]), body
    return str(body["outcome"])


async def pushed(env: Env, localstripe_url: str, card: str | None = None) -> tuple[str, str]:
    """The April invoice of a Stripe-billed contract, pushed and open at Stripe:
    (Meterline invoice id, Stripe invoice id)."""
    acme = await stripe_shop(env, localstripe_url, card=card)
    invoice = await finalize_april(env, acme.customer_id)
    synced = await at_provider(env, invoice["id"])
    assert (synced["status"], synced["paymentStatus"]) == ("SYNCED", "OPEN"), synced
    return invoice["id"], synced["providerInvoiceId"]


async def payment_status(env: Env, invoice_id: str) -> str:
    return str((await at_provider(env, invoice_id))["paymentStatus"])


async def sent(env: Env) -> tuple[int, int]:
    """How many ``invoice.paid`` and ``invoice.payment_failed`` messages the org has."""
    return len(await messages(env, "invoice.paid")), len(
        await messages(env, "invoice.payment_failed")
    )


async def test_a_paid_event_marks_the_invoice_paid_once_and_a_redelivery_changes_nothing(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    paid = stripe_event("evt_paid_1", "invoice.paid", stripe_id)
    body, header = signed(paid)
    response = await post_stripe_event(env, body, header)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "event_id": "evt_paid_1", "outcome": "updated"}
    assert await payment_status(env, invoice_id) == "PAID"
    (message,) = await messages(env, "invoice.paid")
    assert message["type"] == "invoice.paid"
    assert message["data"]["invoice_id"] == invoice_id
    assert message["data"]["total"] == "12.34"
    assert message["data"]["provider"] == "stripe"
    assert message["data"]["provider_invoice_id"] == stripe_id
    assert message["data"]["payment_status"] == "paid"

    again = await post_stripe_event(env, body, header)  # Stripe redelivers the same event
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "duplicate"
    # invoice.payment_succeeded, which Stripe sends next to invoice.paid, is no news
    assert await deliver(env, stripe_event("evt_ps_1", "invoice.payment_succeeded", stripe_id)) in (
        "unchanged",
        "updated",
    )
    assert await payment_status(env, invoice_id) == "PAID"
    assert await sent(env) == (1, 0)


def other_secret(event: dict[str, Any]) -> tuple[bytes, str | None]:
    return signed(event, OTHER_SECRET)


def no_header(event: dict[str, Any]) -> tuple[bytes, str | None]:
    return signed(event)[0], None


def tampered(event: dict[str, Any]) -> tuple[bytes, str | None]:
    """The signature of the event as Stripe sent it, on a body changed since."""
    _, header = signed(event)
    forged = {**event, "type": "invoice.paid", "data": {"object": {**event["data"]["object"]}}}
    forged["data"]["object"]["amount_paid"] = 1234
    return json.dumps(forged).encode(), header


def stale(event: dict[str, Any]) -> tuple[bytes, str | None]:
    """Correctly signed, six minutes ago (past Stripe's five-minute tolerance): a replay."""
    body = json.dumps(event).encode()
    return body, signature(body, stamp=int(time.time()) - 360)


def garbage(event: dict[str, Any]) -> tuple[bytes, str | None]:
    return json.dumps(event).encode(), "not a stripe signature"


@pytest.mark.parametrize("forge", [other_secret, no_header, tampered, stale, garbage])
async def test_an_event_whose_signature_does_not_verify_is_refused_and_changes_nothing(
    env: Env, localstripe_url: str, forge: Callable[[dict[str, Any]], tuple[bytes, str | None]]
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    event = stripe_event("evt_forged", "invoice.paid", stripe_id)
    response = await post_stripe_event(env, *forge(event))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await payment_status(env, invoice_id) == "OPEN"
    assert await sent(env) == (0, 0)
    # the refused delivery did not use up the event id: Stripe's genuine one still counts
    assert await deliver(env, event) == "updated"
    assert await payment_status(env, invoice_id) == "PAID"


async def test_events_meterline_does_not_follow_are_acknowledged_and_ignored(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    customer = {**stripe_event("evt_cus", "customer.created", "cus_123")}
    customer["data"] = {"object": {"id": "cus_123", "object": "customer"}}
    assert await deliver(env, customer) == "ignored"
    # an invoice event type that moves no payment status, about our own Stripe invoice
    assert await deliver(env, stripe_event("evt_fin", "invoice.finalized", stripe_id)) == "ignored"
    assert await payment_status(env, invoice_id) == "OPEN"
    assert await sent(env) == (0, 0)


async def test_an_event_about_a_stripe_invoice_meterline_did_not_push_is_unknown(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, _ = await pushed(env, localstripe_url)
    for n, type in enumerate(["invoice.paid", "invoice.payment_failed", "invoice.voided"]):
        event = stripe_event(f"evt_other_{n}", type, "in_made_in_the_dashboard")
        assert await deliver(env, event) == "unknown_invoice", type
    assert await payment_status(env, invoice_id) == "OPEN"
    assert await sent(env) == (0, 0)


async def test_every_failed_attempt_is_reported_then_a_payment_is_final(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    assert await deliver(env, stripe_event("evt_f1", "invoice.payment_failed", stripe_id)) == (
        "updated"
    )
    assert await payment_status(env, invoice_id) == "PAYMENT_FAILED"
    assert await deliver(env, stripe_event("evt_f2", "invoice.payment_failed", stripe_id)) == (
        "updated"
    )
    assert await payment_status(env, invoice_id) == "PAYMENT_FAILED"
    failures = await messages(env, "invoice.payment_failed")
    assert len(failures) == 2
    for failure in failures:
        assert failure["data"]["invoice_id"] == invoice_id
        assert failure["data"]["provider_invoice_id"] == stripe_id
        assert failure["data"]["payment_status"] == "payment_failed"
    assert len({failure["id"] for failure in failures}) == 2

    # Smart Retries succeeds
    assert await deliver(env, stripe_event("evt_p", "invoice.paid", stripe_id)) == "updated"
    assert await payment_status(env, invoice_id) == "PAID"
    assert await sent(env) == (1, 2)

    # a failure Stripe sent before the payment arrives late: it never undoes the payment
    late = stripe_event("evt_f0", "invoice.payment_failed", stripe_id)
    assert await deliver(env, late) == "unchanged"
    assert await payment_status(env, invoice_id) == "PAID"
    assert await sent(env) == (1, 2)


async def test_a_voided_stripe_invoice_is_void_for_good_without_our_payment_webhooks(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    assert await deliver(env, stripe_event("evt_v", "invoice.voided", stripe_id)) == "updated"
    assert await payment_status(env, invoice_id) == "VOID"
    assert await deliver(env, stripe_event("evt_lp", "invoice.paid", stripe_id)) == "unchanged"
    late = stripe_event("evt_lf", "invoice.payment_failed", stripe_id)
    assert await deliver(env, late) == "unchanged"
    assert await payment_status(env, invoice_id) == "VOID"
    assert await sent(env) == (0, 0)


async def test_an_event_signed_with_another_organizations_secret_cannot_touch_our_invoice(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    _, other_key = await env.new_org("Globex")
    await data(
        env,
        SET_STRIPE,
        key=other_key,
        input={"secretKey": "sk_test_globex", "webhookSigningSecret": OTHER_SECRET},
    )
    # Globex's Stripe account (or whoever holds its secret) names Acme's Stripe invoice
    event = stripe_event("evt_cross", "invoice.paid", stripe_id)
    assert await deliver(env, event, OTHER_SECRET) == "unknown_invoice"
    assert await payment_status(env, invoice_id) == "OPEN"
    assert await sent(env) == (0, 0)
    found = await data(env, MESSAGES, key=other_key, type="invoice.paid")
    assert found["webhookMessages"]["nodes"] == []
    # event ids are Stripe's, per account: Acme's own event of that id is still news
    assert await deliver(env, event) == "updated"
    assert await payment_status(env, invoice_id) == "PAID"


async def test_two_organizations_fed_by_one_stripe_endpoint_both_hear_their_payments(
    env: Env, localstripe_url: str
) -> None:
    """One Stripe account, one webhook endpoint (one signing secret) set up in two
    organizations: the event is verified by both secrets, and is about Acme's invoice."""
    _, other_key = await env.new_org("Acme Staging")
    await data(
        env,
        SET_STRIPE,
        key=other_key,
        input={"secretKey": "sk_test_staging", "webhookSigningSecret": WEBHOOK_SECRET},
    )
    invoice_id, stripe_id = await pushed(env, localstripe_url)
    assert await deliver(env, stripe_event("evt_shared", "invoice.paid", stripe_id)) == "updated"
    assert await payment_status(env, invoice_id) == "PAID"
    assert await sent(env) == (1, 0)


class Recorder:
    """The app, noting every ``/webhooks/stripe`` request it answers: (event type,
    Stripe invoice id, HTTP status, outcome)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.answers: list[tuple[str, str, int, str | None]] = []
        self.answered = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/webhooks/stripe":
            await self.app(scope, receive, send)
            return
        request: list[bytes] = []
        answer: dict[str, Any] = {"body": b""}

        async def reading() -> Message:
            message = await receive()
            request.append(message.get("body", b""))
            return message

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        await self.app(scope, reading, answering)
        event = json.loads(b"".join(request))
        outcome = json.loads(answer["body"]).get("outcome")
        about = str(event["data"]["object"].get("id"))
        self.answers.append((event["type"], about, answer["status"], outcome))
        self.answered.set()

    def about(self, stripe_id: str) -> list[tuple[str, int, str | None]]:
        return [
            (type, status, outcome) for type, of, status, outcome in self.answers if of == stripe_id
        ]


async def pay_through_localstripe(
    env: Env, localstripe_url: str, card: str
) -> tuple[str, str, Recorder]:
    """Serve the app, point a localstripe webhook at it, push the April invoice of a
    customer with ``card`` and have localstripe pay it: (invoice id, Stripe invoice id,
    what the app answered to the events about that Stripe invoice, within 10 s)."""
    recorder = Recorder(app_of(env))
    hook = f"meterline_{uuid.uuid4().hex}"
    async with serving(recorder) as host:
        await stripe_support.register_stripe_webhook(
            localstripe_url, hook, f"http://{host}/webhooks/stripe", WEBHOOK_SECRET
        )
        try:
            invoice_id, stripe_id = await pushed(env, localstripe_url, card=card)
            wanted = PAID_TYPES
            if card == "declined":
                wanted = {"invoice.payment_failed"}
                with pytest.raises(stripe.CardError):
                    await stripe_support.stripe_client(localstripe_url).v1.invoices.pay_async(
                        stripe_id
                    )
            else:
                await stripe_support.stripe_client(localstripe_url).v1.invoices.pay_async(stripe_id)
            async with asyncio.timeout(10):  # localstripe sends its events 0.1 s later
                while not wanted <= {type for type, _, _ in recorder.about(stripe_id)}:
                    recorder.answered.clear()
                    await recorder.answered.wait()
        finally:
            await stripe_support.unregister_stripe_webhook(localstripe_url, hook)
    return invoice_id, stripe_id, recorder


async def test_a_payment_at_stripe_comes_back_as_paid_with_one_webhook(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id, recorder = await pay_through_localstripe(env, localstripe_url, "ok")
    answers = recorder.about(stripe_id)
    assert all(status == 200 for _, status, _ in answers), answers
    # the first of invoice.paid / invoice.payment_succeeded moves it, the other is no news
    assert [outcome for type, _, outcome in answers if type in PAID_TYPES].count("updated") >= 1
    assert await payment_status(env, invoice_id) == "PAID"
    (message,) = await messages(env, "invoice.paid")  # one, for two Stripe events
    assert (message["data"]["invoice_id"], message["data"]["total"]) == (invoice_id, "12.34")
    assert message["data"]["provider_invoice_id"] == stripe_id
    assert message["data"]["payment_status"] == "paid"
    assert await messages(env, "invoice.payment_failed") == []


async def test_a_declined_card_at_stripe_comes_back_as_payment_failed(
    env: Env, localstripe_url: str
) -> None:
    invoice_id, stripe_id, recorder = await pay_through_localstripe(
        env, localstripe_url, "declined"
    )
    assert ("invoice.payment_failed", 200, "updated") in recorder.about(stripe_id)
    assert await payment_status(env, invoice_id) == "PAYMENT_FAILED"
    (message,) = await messages(env, "invoice.payment_failed")
    assert message["data"]["invoice_id"] == invoice_id
    assert message["data"]["provider_invoice_id"] == stripe_id
    assert message["data"]["payment_status"] == "payment_failed"
    assert await messages(env, "invoice.paid") == []


async def test_a_rotated_signing_secret_replaces_the_old_one(
    env: Env, localstripe_url: str
) -> None:
    await set_stripe(env, localstripe_url)
    assert await deliver(env, stripe_event("evt_before", "customer.created", "cus_1")) == "ignored"
    await set_stripe(env, localstripe_url, webhookSigningSecret="whsec_rolled")
    old = await post_stripe_event(env, *signed(stripe_event("evt_old", "customer.created", "x")))
    assert old.status_code == 400, old.text
    assert old.json()["error"]["code"] == "invalid_signature"
    event = stripe_event("evt_new", "customer.created", "cus_1")
    assert await deliver(env, event, "whsec_rolled") == "ignored"
