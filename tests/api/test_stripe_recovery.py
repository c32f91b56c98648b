"""A push that finds Stripe holding more than its own bookkeeping says (SPEC §11): items a
lost attempt made are adopted, a draft that does not add up is never finalized, and a
voided invoice that was paid at Stripe is reported, not silently marked void."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from models.store.invoice_syncs import lease_sync, release, syncs
from tests import stripe_support
from tests.api.stripe_flow import (
    at_provider,
    finalize_april,
    set_stripe,
    stripe_invoice,
    stripe_invoices_of,
    stripe_shop,
)
from tests.api.support import data
from tests.api.worker_support import ctx_of, messages
from tests.conftest import Env
from tests.stripe_support import stripe_client, stripe_requests
from workers.context import job_context
from workers.stripe_sync import LEASE, Stop, _progress, sync_stripe

localstripe_url = stripe_support.localstripe_url  # the session's localstripe (a fixture)

VOID = "mutation($id: ID!) { voidInvoice(id: $id) { id status } }"


async def unpushed_invoice(env: Env, base: str) -> tuple[Any, dict[str, Any]]:
    """A Stripe-billed April invoice (12.34) whose push has not reached Stripe yet (Stripe
    was unreachable), with Stripe reachable again: (the shop, the invoice)."""
    acme = await stripe_shop(env, base)
    await set_stripe(env, base, apiBase="http://localhost:9")  # discard: nothing listens
    invoice = await finalize_april(env, acme.customer_id)
    assert (await at_provider(env, invoice["id"]))["status"] == "PENDING"
    await set_stripe(env, base)
    return acme, invoice


async def draft_at_stripe(base: str, customer: str, invoice_id: str, *items: Any) -> str:
    """A draft Stripe invoice for ``invoice_id`` holding ``items`` (amount, metadata), as an
    attempt whose bookkeeping was lost would have left it."""
    v1 = stripe_client(base).v1
    draft = await v1.invoices.create_async(
        {
            "customer": customer,
            "pending_invoice_items_behavior": "exclude",
            "metadata": {"meterline_invoice_id": invoice_id},
        }
    )
    for amount, metadata in items:
        await v1.invoice_items.create_async(
            {
                "customer": customer,
                "invoice": draft.id,
                "amount": amount,
                "currency": "usd",
                "metadata": metadata,
            }
        )
    return str(draft.id)


async def resume_at(env: Env, invoice_id: str, stripe_invoice_id: str) -> str:
    """Record ``stripe_invoice_id`` as the push's (and nothing else), due now; run it."""
    async with env.write() as conn:
        await conn.execute(
            update(syncs)
            .where(syncs.c.invoice_id == invoice_id)
            .values(stripe_invoice_id=stripe_invoice_id, items={}, next_attempt_at=env.clock())
        )
    return await sync_stripe(ctx_of(env), invoice_id)


async def test_items_a_lost_attempt_made_are_adopted_not_made_again(
    env: Env, localstripe_url: str
) -> None:
    acme, invoice = await unpushed_invoice(env, localstripe_url)
    ours = {"meterline_invoice_id": invoice["id"], "meterline_line": "0"}
    draft = await draft_at_stripe(
        localstripe_url, acme.stripe_customer_id, invoice["id"], (1234, ours)
    )
    start = len(await stripe_requests(localstripe_url))

    assert await resume_at(env, invoice["id"], draft) == "synced"

    posts = [r for r in (await stripe_requests(localstripe_url))[start:] if r["method"] == "POST"]
    assert [r["path"] for r in posts] == [f"/v1/invoices/{draft}/finalize"]
    found = await stripe_invoice(localstripe_url, draft)
    assert (found.status, found.total, len(found.lines.data)) == ("open", 1234, 1)
    pushed = await at_provider(env, invoice["id"])
    assert (pushed["status"], pushed["providerInvoiceId"], pushed["totalMismatch"]) == (
        "SYNCED",
        draft,
        False,
    )


async def test_a_draft_that_does_not_add_up_is_not_finalized_and_is_reported(
    env: Env, localstripe_url: str
) -> None:
    acme, invoice = await unpushed_invoice(env, localstripe_url)
    stranger = {"note": "added by hand in the Dashboard"}
    draft = await draft_at_stripe(
        localstripe_url, acme.stripe_customer_id, invoice["id"], (500, stranger)
    )

    assert await resume_at(env, invoice["id"], draft) == "failed"

    found = await stripe_invoice(localstripe_url, draft)
    assert (found.status, found.total) == ("draft", 1734)  # never finalized, never charged
    pushed = await at_provider(env, invoice["id"])
    assert pushed["status"] == "BILLING_PROVIDER_ERROR"
    assert (pushed["totalMismatch"], pushed["providerTotal"]) == (True, "17.34")
    assert "not finalized" in pushed["error"]
    (message,) = await messages(env, "invoice.billing_provider_error")
    assert message["data"]["invoice_id"] == invoice["id"]
    assert "total mismatch" in message["data"]["error"]


async def test_voiding_an_invoice_paid_at_stripe_reports_it_and_keeps_it_paid(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url, card="ok")
    invoice = await finalize_april(env, acme.customer_id)
    pushed = await at_provider(env, invoice["id"])
    # paid at Stripe; its event has not reached Meterline (no webhook is registered)
    await stripe_client(localstripe_url).v1.invoices.pay_async(pushed["providerInvoiceId"])

    await data(env, VOID, id=invoice["id"])
    await env.run_jobs()

    after = await at_provider(env, invoice["id"])
    assert (after["status"], after["paymentStatus"]) == ("BILLING_PROVIDER_ERROR", "PAID")
    assert "refund it in Stripe" in after["error"]
    (stripe_side,) = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert stripe_side.status == "paid"
    (message,) = await messages(env, "invoice.billing_provider_error")
    assert message["data"]["payment_status"] == "paid"
    assert [m["data"]["invoice_id"] for m in await messages(env, "invoice.paid")] == [invoice["id"]]


async def test_a_void_that_arrives_mid_push_stops_it_and_goes_first(
    env: Env, localstripe_url: str
) -> None:
    acme, invoice = await unpushed_invoice(env, localstripe_url)
    # a worker takes the push (its retry is due) and makes the Stripe draft; then the
    # operator voids
    async with env.write() as conn:
        await conn.execute(
            update(syncs)
            .where(syncs.c.invoice_id == invoice["id"])
            .values(next_attempt_at=env.clock())
        )
        leased = await lease_sync(conn, invoice["id"], env.clock(), LEASE)
    assert leased is not None
    draft = await draft_at_stripe(localstripe_url, acme.stripe_customer_id, invoice["id"])
    await data(env, VOID, id=invoice["id"])
    jobs = job_context(ctx_of(env))
    with pytest.raises(Stop) as stopped:  # its next step learns of the void
        await _progress(jobs, leased)(stripe_invoice_id=draft)
    assert stopped.value.void
    async with env.write() as conn:
        await release(conn, leased, env.clock())

    assert await sync_stripe(ctx_of(env), invoice["id"]) == "voided"

    after = await at_provider(env, invoice["id"])
    assert (after["status"], after["paymentStatus"]) == ("SKIPPED", "VOID")
    assert await stripe_invoices_of(localstripe_url, acme.stripe_customer_id) == []  # deleted
    assert await messages(env, "invoice.billing_provider_error") == []
