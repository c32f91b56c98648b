"""Pushing finalized invoices to Stripe (SPEC §11), against a real localstripe server."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from models.store.invoice_syncs import syncs
from tests import stripe_support
from tests.api.stripe_flow import (
    LINK,
    at_provider,
    finalize_april,
    set_stripe,
    stripe_invoice,
    stripe_invoices_of,
    stripe_shop,
)
from tests.api.support import APRIL, JUNE, data, product, shop
from tests.api.worker_support import ctx_of, messages
from tests.conftest import Env
from tests.stripe_support import create_stripe_customer, stripe_requests
from workers.stripe_sync import sync_stripe

localstripe_url = stripe_support.localstripe_url  # the session's localstripe (a fixture)

INVOICE = """
query($id: ID!) { invoice(id: $id) { id status total lines { type name amount }
  billingProvider { status paymentStatus providerInvoiceId providerTotal error }
} }"""
VOID = "mutation($id: ID!) { voidInvoice(id: $id) { id status } }"
REGENERATE = "mutation($id: ID!) { regenerateInvoice(id: $id) { id status total } }"


def cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


async def invoice_of(env: Env, invoice_id: str) -> dict[str, Any]:
    return dict((await data(env, INVOICE, id=invoice_id))["invoice"])


async def requests_since(base: str, start: int) -> list[dict[str, Any]]:
    return (await stripe_requests(base))[start:]


async def test_a_finalized_invoice_appears_in_stripe_with_its_items_and_total(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id)
    assert invoice["total"] == "12.34"
    pushed = await at_provider(env, invoice["id"])
    assert (pushed["status"], pushed["paymentStatus"]) == ("SYNCED", "OPEN"), pushed
    assert (pushed["providerTotal"], pushed["totalMismatch"]) == ("12.34", False)
    found = await stripe_invoice(localstripe_url, pushed["providerInvoiceId"])
    assert (found.status, found.total, found.customer) == ("open", 1234, acme.stripe_customer_id)
    assert found.metadata["meterline_invoice_id"] == invoice["id"]
    assert [line.amount for line in found.lines.data] == [1234]


async def test_credits_and_a_prepaid_commit_become_stripe_items_line_by_line(
    env: Env, localstripe_url: str
) -> None:
    fee = await product(env, "Platform fee", "FIXED")
    credit = {"name": "Trial", "amount": "5.55", "startingAt": APRIL, "endingBefore": JUNE}
    commit = {
        "name": "Prepaid",
        "productId": fee,
        "type": "PREPAID",
        "amount": "50.25",
        "startingAt": APRIL,
        "endingBefore": "2027-04-01T00:00:00Z",
    }
    acme = await stripe_shop(env, localstripe_url, credits=[credit], commits=[commit])
    invoice = await invoice_of(env, (await finalize_april(env, acme.customer_id))["id"])
    # 1234 tokens x $0.01 = 12.34: the credit draws 5.55, the prepaid commit the rest
    assert [(line["type"], line["amount"]) for line in invoice["lines"]] == [
        ("USAGE", "12.34"),
        ("COMMIT_PURCHASE", "50.25"),
        ("CREDIT_APPLIED", "-5.55"),
        ("COMMIT_APPLIED", "-6.79"),
    ]
    assert invoice["total"] == "50.25"
    pushed = invoice["billingProvider"]
    assert (pushed["status"], pushed["providerTotal"]) == ("SYNCED", invoice["total"]), pushed

    found = await stripe_invoice(localstripe_url, pushed["providerInvoiceId"])
    assert found.total == 5025
    assert len(found.lines.data) == len(invoice["lines"])
    for ours, theirs in zip(invoice["lines"], found.lines.data, strict=True):
        assert theirs.amount == cents(ours["amount"]), (ours, theirs)
        assert theirs.currency == "usd"
        assert theirs.metadata["meterline_line_type"] == ours["type"].lower()
        assert theirs.metadata["meterline_invoice_id"] == invoice["id"]
        assert theirs.description.startswith(ours["name"]), (ours, theirs.description)


async def test_running_the_job_again_after_a_push_sends_nothing(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id)
    first = await at_provider(env, invoice["id"])
    assert first["status"] == "SYNCED"
    start = len(await stripe_requests(localstripe_url))

    assert await sync_stripe(ctx_of(env), invoice["id"]) == "skipped"
    env.clock.set(env.clock() + timedelta(hours=1))  # and later, with the sweeper's help
    await env.run_jobs()
    assert await sync_stripe(ctx_of(env), invoice["id"]) == "skipped"

    assert [r for r in await requests_since(localstripe_url, start) if r["method"] == "POST"] == []
    (only,) = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert only.id == first["providerInvoiceId"]
    assert await at_provider(env, invoice["id"]) == first


async def test_a_push_whose_bookkeeping_was_lost_is_answered_from_the_idempotency_keys(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id, tokens=4321)
    first = await at_provider(env, invoice["id"])
    made = await stripe_invoice(localstripe_url, first["providerInvoiceId"])
    # as if a worker pushed everything, then died before recording any of it
    async with env.write() as conn:
        await conn.execute(
            update(syncs)
            .where(syncs.c.invoice_id == invoice["id"])
            .values(
                stripe_invoice_id=None,
                items={},
                status="pending",
                payment_status="none",
                next_attempt_at=env.clock(),
                synced_at=None,
                stripe_total=None,
            )
        )
    start = len(await stripe_requests(localstripe_url))

    assert await sync_stripe(ctx_of(env), invoice["id"]) == "synced"

    posts = [r for r in await requests_since(localstripe_url, start) if r["method"] == "POST"]
    # the invoice and finalize, answered from their keys; the item is found on the draft
    assert [r["path"].rsplit("/", 1)[-1] for r in posts] == ["invoices", "finalize"]
    assert all(r["replayed"] for r in posts), posts
    (only,) = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert only.id == made.id
    again = await stripe_invoice(localstripe_url, made.id)
    assert [line.amount for line in again.lines.data] == [4321]
    assert (again.status, again.total) == ("open", 4321)
    after = await at_provider(env, invoice["id"])
    assert (after["status"], after["paymentStatus"]) == ("SYNCED", "OPEN")
    assert (after["providerInvoiceId"], after["providerTotal"]) == (made.id, "43.21")


async def test_a_push_that_died_after_finalizing_at_stripe_is_finished_without_new_objects(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id)
    first = await at_provider(env, invoice["id"])
    # everything recorded at Stripe's side, but the job died before settling the push
    async with env.write() as conn:
        await conn.execute(
            update(syncs)
            .where(syncs.c.invoice_id == invoice["id"])
            .values(status="pending", payment_status="none", next_attempt_at=env.clock())
        )
    start = len(await stripe_requests(localstripe_url))
    assert await sync_stripe(ctx_of(env), invoice["id"]) == "synced"
    assert [r for r in await requests_since(localstripe_url, start) if r["method"] == "POST"] == []
    assert len(await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)) == 1
    after = await at_provider(env, invoice["id"])
    assert (after["status"], after["paymentStatus"]) == ("SYNCED", "OPEN")
    assert after["providerInvoiceId"] == first["providerInvoiceId"]


async def test_every_stripe_post_of_a_push_carries_its_own_key_made_of_the_invoice_id(
    env: Env, localstripe_url: str
) -> None:
    fee = await product(env, "Platform fee", "FIXED")
    commit = {
        "name": "Prepaid",
        "productId": fee,
        "type": "PREPAID",
        "amount": "20",
        "startingAt": APRIL,
        "endingBefore": "2027-04-01T00:00:00Z",
    }
    acme = await stripe_shop(env, localstripe_url, commits=[commit])
    start = len(await stripe_requests(localstripe_url))
    invoice = await finalize_april(env, acme.customer_id)
    assert len(invoice["lines"]) == 3  # usage, commit purchase, commit applied

    posts = [r for r in await requests_since(localstripe_url, start) if r["method"] == "POST"]
    assert [r["path"] for r in posts] == [
        "/v1/invoices",
        "/v1/invoiceitems",
        "/v1/invoiceitems",
        "/v1/invoiceitems",
        f"/v1/invoices/{(await at_provider(env, invoice['id']))['providerInvoiceId']}/finalize",
    ]
    keys = [r["idempotency_key"] for r in posts]
    assert all(k and k.startswith(f"meterline-{invoice['id']}-") for k in keys), keys
    assert len(set(keys)) == len(keys), keys
    assert all(r["status"] == 200 and not r["replayed"] for r in posts), posts


async def test_a_zero_total_invoice_is_not_sent_to_stripe(env: Env, localstripe_url: str) -> None:
    trial = {"name": "Trial", "amount": "50", "startingAt": APRIL, "endingBefore": JUNE}
    acme = await stripe_shop(env, localstripe_url, credits=[trial])
    invoice = await finalize_april(env, acme.customer_id)
    assert invoice["total"] == "0.00"
    pushed = await at_provider(env, invoice["id"])
    assert (pushed["status"], pushed["paymentStatus"]) == ("SKIPPED", "NONE"), pushed
    assert pushed["providerInvoiceId"] is None
    assert "zero total" in pushed["error"]
    assert await stripe_invoices_of(localstripe_url, acme.stripe_customer_id) == []
    assert await messages(env, "invoice.billing_provider_error") == []


async def test_with_send_zero_total_a_zero_invoice_is_sent_and_paid_at_once(
    env: Env, localstripe_url: str
) -> None:
    trial = {"name": "Trial", "amount": "50", "startingAt": APRIL, "endingBefore": JUNE}
    acme = await stripe_shop(env, localstripe_url, credits=[trial])
    settings = await set_stripe(env, localstripe_url, sendZeroTotalInvoices=True)
    assert settings["sendZeroTotalInvoices"] is True
    invoice = await finalize_april(env, acme.customer_id)
    assert invoice["total"] == "0.00"
    pushed = await at_provider(env, invoice["id"])
    assert (pushed["status"], pushed["paymentStatus"]) == ("SYNCED", "PAID"), pushed
    assert (pushed["providerTotal"], pushed["totalMismatch"]) == ("0.00", False)
    (found,) = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert (found.id, found.status, found.total) == (pushed["providerInvoiceId"], "paid", 0)
    assert sorted(line.amount for line in found.lines.data) == [-1234, 1234]
    (paid,) = await messages(env, "invoice.paid")
    assert paid["data"]["invoice_id"] == invoice["id"]
    assert paid["data"]["provider_invoice_id"] == found.id
    assert paid["data"]["payment_status"] == "paid"


async def test_an_invoice_of_a_contract_not_billed_through_stripe_stays_out_of_stripe(
    env: Env, localstripe_url: str
) -> None:
    await set_stripe(env, localstripe_url)
    acme = await shop(env)  # billingProvider NONE (the default)
    stripe_customer = await create_stripe_customer(localstripe_url, "acme@example.com")
    await data(
        env, LINK, input={"customerId": acme.customer_id, "stripeCustomerId": stripe_customer}
    )
    start = len(await stripe_requests(localstripe_url))
    invoice = await finalize_april(env, acme.customer_id)
    assert (invoice["status"], invoice["total"]) == ("FINALIZED", "12.34")
    assert invoice["billingProvider"] is None
    assert (await invoice_of(env, invoice["id"]))["billingProvider"] is None
    assert await requests_since(localstripe_url, start) == []  # not a single Stripe call
    assert await stripe_invoices_of(localstripe_url, stripe_customer) == []


async def test_voiding_a_pushed_invoice_voids_it_at_stripe_and_regenerating_pushes_anew(
    env: Env, localstripe_url: str
) -> None:
    acme = await stripe_shop(env, localstripe_url)
    invoice = await finalize_april(env, acme.customer_id)
    first = await at_provider(env, invoice["id"])
    assert first["paymentStatus"] == "OPEN"

    env.clock.set(env.clock() + timedelta(hours=1))
    assert (await data(env, VOID, id=invoice["id"]))["voidInvoice"]["status"] == "VOID"
    await env.run_jobs()
    voided = await at_provider(env, invoice["id"])
    assert (voided["paymentStatus"], voided["providerInvoiceId"]) == (
        "VOID",
        first["providerInvoiceId"],
    )
    assert voided["error"] is None
    assert (await stripe_invoice(localstripe_url, first["providerInvoiceId"])).status == "void"

    env.clock.set(env.clock() + timedelta(hours=1))
    regenerated = (await data(env, REGENERATE, id=invoice["id"]))["regenerateInvoice"]
    assert (regenerated["status"], regenerated["total"]) == ("FINALIZED", "12.34")
    await env.run_jobs()
    again = await at_provider(env, regenerated["id"])
    assert (again["status"], again["paymentStatus"]) == ("SYNCED", "OPEN"), again
    assert again["providerInvoiceId"] not in (None, first["providerInvoiceId"])
    found = await stripe_invoices_of(localstripe_url, acme.stripe_customer_id)
    assert sorted((i.id, i.status) for i in found) == sorted(
        [(first["providerInvoiceId"], "void"), (again["providerInvoiceId"], "open")]
    )
    renewed = await stripe_invoice(localstripe_url, again["providerInvoiceId"])
    assert renewed.metadata["meterline_invoice_id"] == regenerated["id"]
    assert renewed.total == 1234
    assert (await at_provider(env, invoice["id"]))["paymentStatus"] == "VOID"
