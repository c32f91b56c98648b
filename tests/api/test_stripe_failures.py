"""When the push to Stripe fails (SPEC §11): what Stripe may get over is retried on the
schedule, the rest fails at once; both end in BILLING_PROVIDER_ERROR with a webhook, and
``retryInvoiceSync`` starts again once the cause is fixed. Also the Stripe settings."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any

from integrations.stripe import RETRY_SCHEDULE
from tests import stripe_support
from tests.api.stripe_flow import (
    LINK,
    SECRET_KEY,
    WEBHOOK_SECRET,
    at_provider,
    finalize_april,
    local_base,
    set_stripe,
    stripe_invoice,
    stripe_invoices_of,
    stripe_shop,
)
from tests.api.support import code_of, data, failure, shop
from tests.api.worker_support import at, ctx_of, messages
from tests.conftest import Env
from tests.stripe_support import create_stripe_customer
from workers.deliver import outbox_sweeper

localstripe_url = stripe_support.localstripe_url  # the session's localstripe (a fixture)

RETRY = """mutation($id: ID!) { retryInvoiceSync(invoiceId: $id) { id
  billingProvider { status attempts nextAttemptAt error }
} }"""
SETTINGS = "{ stripeSettings { secretKeyHint webhookSecretSet apiBase sendZeroTotalInvoices } }"
SET_STRIPE = """mutation($input: StripeSettingsInput!) {
  setStripeSettings(input: $input) { secretKeyHint } }"""
ERROR = "invoice.billing_provider_error"
JITTER = 0.2


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def sweep_and_work(env: Env) -> None:
    """What the workers do at the clock's time: the outbox sweep re-enqueues the due
    pushes, then the queued jobs run."""
    await outbox_sweeper(ctx_of(env))
    await env.run_jobs()


def within(found: str, now: datetime, delay: timedelta) -> bool:
    """Whether ``found`` (an ISO time) is ``now + delay`` give or take the jitter."""
    moment = at(found)
    return now + delay * (1 - JITTER) <= moment <= now + delay * (1 + JITTER)


async def linked(env: Env, customer_id: str, stripe_customer_id: str) -> None:
    await data(env, LINK, input={"customerId": customer_id, "stripeCustomerId": stripe_customer_id})


async def retried(env: Env, invoice_id: str) -> dict[str, Any]:
    found = await data(env, RETRY, id=invoice_id)
    return dict(found["retryInvoiceSync"]["billingProvider"])


async def test_an_unreachable_stripe_is_retried_on_the_schedule_then_reported(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    await set_stripe(env, localstripe_url, apiBase=f"http://localhost:{closed_port()}")
    invoice = await finalize_april(env, acme.customer_id)
    first = await at_provider(env, invoice["id"])
    assert (first["status"], first["attempts"]) == ("PENDING", 1), first
    assert first["paymentStatus"] == "NONE"
    assert within(first["nextAttemptAt"], env.clock(), timedelta(minutes=1)), first
    assert "could not be reached" in first["error"], first

    state = first
    for attempt, delay in enumerate(RETRY_SCHEDULE[1:], start=2):
        due = at(state["nextAttemptAt"])
        env.clock.set(due - timedelta(seconds=5))  # not due yet: nothing happens
        await sweep_and_work(env)
        assert (await at_provider(env, invoice["id"]))["attempts"] == attempt - 1
        env.clock.set(due)
        await sweep_and_work(env)
        state = await at_provider(env, invoice["id"])
        assert (state["status"], state["attempts"]) == ("PENDING", attempt), state
        assert within(state["nextAttemptAt"], env.clock(), delay), (attempt, state)
        assert await messages(env, ERROR) == []

    env.clock.set(at(state["nextAttemptAt"]))
    await sweep_and_work(env)  # the 6th attempt: the last one
    failed = await at_provider(env, invoice["id"])
    assert failed["status"] == "BILLING_PROVIDER_ERROR", failed
    assert failed["nextAttemptAt"] is None
    assert "could not be reached" in failed["error"], failed
    (message,) = await messages(env, ERROR)
    assert message["data"]["invoice_id"] == invoice["id"]
    assert "could not be reached" in message["data"]["error"]
    assert message["data"]["provider_invoice_id"] is None
    env.clock.set(env.clock() + timedelta(days=1))
    await sweep_and_work(env)  # nothing more is tried
    assert await at_provider(env, invoice["id"]) == failed
    assert await stripe_invoices_of(localstripe_url, acme.stripe_customer_id) == []

    await set_stripe(env, localstripe_url)  # apiBase fixed
    again = await retried(env, invoice["id"])
    assert (again["status"], again["attempts"], again["error"]) == ("PENDING", 0, None)
    await env.run_jobs()
    synced = await at_provider(env, invoice["id"])
    assert (synced["status"], synced["paymentStatus"]) == ("SYNCED", "OPEN"), synced
    assert (synced["error"], synced["providerTotal"]) == (None, "12.34")
    (pushed,) = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert (pushed.id, pushed.total) == (synced["providerInvoiceId"], 1234)
    assert len(await messages(env, ERROR)) == 1


async def test_the_attempts_count_every_failed_attempt_up_to_the_last(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    await set_stripe(env, localstripe_url, apiBase=f"http://localhost:{closed_port()}")
    invoice = await finalize_april(env, acme.customer_id)
    for _ in RETRY_SCHEDULE:
        env.clock.set(at((await at_provider(env, invoice["id"]))["nextAttemptAt"]))
        await sweep_and_work(env)
    failed = await at_provider(env, invoice["id"])
    assert failed["status"] == "BILLING_PROVIDER_ERROR"
    # "attempts: Failed attempts so far": six attempts were made, all failed
    assert failed["attempts"] == len(RETRY_SCHEDULE) + 1, failed


async def test_a_customer_not_linked_to_stripe_fails_at_once_until_linked(
    env: Env, localstripe_url: str
) -> None:
    await set_stripe(env, localstripe_url)
    acme = await shop(env, billingProvider="STRIPE")  # no setBillingProvider
    invoice = await finalize_april(env, acme.customer_id)
    failed = await at_provider(env, invoice["id"])
    assert failed["status"] == "BILLING_PROVIDER_ERROR", failed
    assert (failed["nextAttemptAt"], failed["providerInvoiceId"]) == (None, None)
    assert "stripe_customer_id" in failed["error"], failed
    (message,) = await messages(env, ERROR)
    assert message["data"]["invoice_id"] == invoice["id"]
    assert message["data"]["error"] == failed["error"]
    env.clock.set(env.clock() + timedelta(days=1))
    await sweep_and_work(env)  # not retried on its own
    assert (await at_provider(env, invoice["id"]))["status"] == "BILLING_PROVIDER_ERROR"

    stripe_customer = await create_stripe_customer(localstripe_url, "acme@example.com")
    await linked(env, acme.customer_id, stripe_customer)
    assert (await retried(env, invoice["id"]))["status"] == "PENDING"
    await env.run_jobs()
    synced = await at_provider(env, invoice["id"])
    assert (synced["status"], synced["paymentStatus"], synced["error"]) == (
        "SYNCED",
        "OPEN",
        None,
    )
    found = await stripe_invoice(localstripe_url, synced["providerInvoiceId"])
    assert (found.customer, found.total) == (stripe_customer, 1234)
    assert len(await messages(env, ERROR)) == 1


async def test_missing_stripe_settings_fail_at_once(env: Env, localstripe_url: str) -> None:
    acme = await shop(env, billingProvider="STRIPE")
    stripe_customer = await create_stripe_customer(localstripe_url, "acme@example.com")
    await linked(env, acme.customer_id, stripe_customer)
    invoice = await finalize_april(env, acme.customer_id)
    failed = await at_provider(env, invoice["id"])
    assert (failed["status"], failed["nextAttemptAt"]) == ("BILLING_PROVIDER_ERROR", None)
    assert "setStripeSettings" in failed["error"], failed
    assert len(await messages(env, ERROR)) == 1

    await set_stripe(env, localstripe_url)
    await retried(env, invoice["id"])
    await env.run_jobs()
    assert (await at_provider(env, invoice["id"]))["status"] == "SYNCED"


async def test_a_stripe_customer_that_does_not_exist_is_a_permanent_error(
    env: Env, localstripe_url: str
) -> None:
    await set_stripe(env, localstripe_url)
    acme = await shop(env, billingProvider="STRIPE")
    await linked(env, acme.customer_id, "cus_missing")
    invoice = await finalize_april(env, acme.customer_id)
    failed = await at_provider(env, invoice["id"])
    assert failed["status"] == "BILLING_PROVIDER_ERROR", failed
    assert (failed["nextAttemptAt"], failed["providerInvoiceId"]) == (None, None)
    assert failed["error"].startswith("Stripe answered 404"), failed
    (message,) = await messages(env, ERROR)
    assert message["data"]["invoice_id"] == invoice["id"]


async def test_retry_invoice_sync_only_restarts_a_failed_push(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id)
    assert (await at_provider(env, invoice["id"]))["status"] == "SYNCED"
    assert await code_of(env, RETRY, id=invoice["id"]) == "CONFLICT"
    assert await code_of(env, RETRY, id="inv_unknown") == "NOT_FOUND"
    assert await code_of(env, RETRY, key=env.read_key, id=invoice["id"]) == "FORBIDDEN"
    _, other = await env.new_org("Other")
    assert await code_of(env, RETRY, key=other, id=invoice["id"]) == "NOT_FOUND"
    start = len(await stripe_invoices_of(localstripe_url, acme.stripe_customer_id))
    await env.run_jobs()
    assert len(await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)) == start
    assert (await at_provider(env, invoice["id"]))["status"] == "SYNCED"


async def test_retry_invoice_sync_refuses_a_push_still_being_retried(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    await set_stripe(env, localstripe_url, apiBase=f"http://localhost:{closed_port()}")
    invoice = await finalize_april(env, acme.customer_id)
    before = await at_provider(env, invoice["id"])
    assert before["status"] == "PENDING"
    assert await code_of(env, RETRY, id=invoice["id"]) == "CONFLICT"
    assert await at_provider(env, invoice["id"]) == before


async def test_stripe_settings_are_validated_and_never_show_the_key(
    env: Env, localstripe_url: str
) -> None:
    assert (await data(env, SETTINGS))["stripeSettings"] is None
    good = {"secretKey": SECRET_KEY, "webhookSigningSecret": WEBHOOK_SECRET}
    for bad in (
        {**good, "secretKey": "pk_test_meterline"},
        {**good, "secretKey": "sk_test with space"},
        {**good, "webhookSigningSecret": "secret"},
        {**good, "apiBase": "http://10.0.0.1"},
        {**good, "apiBase": "http://127.0.0.1:8080"},
        {"webhookSigningSecret": WEBHOOK_SECRET},  # no key yet, none given
    ):
        found = await failure(env, SET_STRIPE, input=bad)
        assert found["code"] == "VALIDATION", (bad, found)
    assert (await data(env, SETTINGS))["stripeSettings"] is None  # nothing was saved

    await set_stripe(env, localstripe_url)
    body = await data(env, SETTINGS)
    assert body["stripeSettings"] == {
        "secretKeyHint": "sk_test_…line",
        "webhookSecretSet": True,
        "apiBase": local_base(localstripe_url),
        "sendZeroTotalInvoices": False,
    }
    assert SECRET_KEY not in str(body) and WEBHOOK_SECRET not in str(body)
    assert await code_of(env, SETTINGS, key=env.read_key) == "FORBIDDEN"
    assert await code_of(env, SET_STRIPE, key=env.read_key, input=good) == "FORBIDDEN"

    # a key rotation keeps what is not given; null removes
    await data(env, SET_STRIPE, input={"secretKey": "rk_live_abcd1234"})
    after = (await data(env, SETTINGS))["stripeSettings"]
    assert (after["secretKeyHint"], after["webhookSecretSet"], after["apiBase"]) == (
        "rk_live_…1234",
        True,
        local_base(localstripe_url),
    )
    await data(env, SET_STRIPE, input={"webhookSigningSecret": None, "apiBase": None})
    after = (await data(env, SETTINGS))["stripeSettings"]
    assert (after["secretKeyHint"], after["webhookSecretSet"], after["apiBase"]) == (
        "rk_live_…1234",
        False,
        None,
    )
