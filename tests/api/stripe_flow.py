"""Helpers for the Stripe tests: an organization set up against the test's localstripe,
a customer linked to a Stripe customer, a contract billed through Stripe, and the invoice
as Meterline and Stripe each see it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.api.support import data, llm, send, shop
from tests.api.worker_support import at
from tests.conftest import Env
from tests.stripe_support import create_stripe_customer, stripe_client

WEBHOOK_SECRET = "whsec_meterline_tests"
SECRET_KEY = "sk_test_meterline"

SET_STRIPE = """
mutation($input: StripeSettingsInput!) { setStripeSettings(input: $input) {
  secretKeyHint webhookSecretSet apiBase sendZeroTotalInvoices updatedAt
} }"""
LINK = """
mutation($input: BillingProviderInput!) { setBillingProvider(input: $input) { id } }"""
AT_PROVIDER = """
query($id: ID!) { invoice(id: $id) { id total status billingProvider {
  provider status paymentStatus providerInvoiceId providerTotal totalMismatch attempts
  nextAttemptAt error syncedAt
} } }"""
INVOICES = """
query($id: ID!) { customer(id: $id) { invoices(first: 10) { nodes {
  id total status lines { type amount } billingProvider { status paymentStatus providerInvoiceId }
} } } }"""


def local_base(localstripe_url: str) -> str:
    """The localstripe address by the host name the test installation allows (SSRF guard)."""
    return f"http://localhost:{urlsplit(localstripe_url).port}"


async def set_stripe(env: Env, localstripe_url: str, **fields: Any) -> dict[str, Any]:
    settings = {
        "secretKey": SECRET_KEY,
        "webhookSigningSecret": WEBHOOK_SECRET,
        "apiBase": local_base(localstripe_url),
        **fields,
    }
    found = await data(env, SET_STRIPE, input=settings)
    return dict(found["setStripeSettings"])


@dataclass(frozen=True)
class StripeShop:
    customer_id: str
    contract_id: str
    stripe_customer_id: str


async def stripe_shop(
    env: Env, localstripe_url: str, *, card: str | None = None, **contract_fields: Any
) -> StripeShop:
    """A Stripe-billed contract (Tokens at $0.01) for a customer linked to a new Stripe
    customer; the organization's Stripe settings point at localstripe."""
    await set_stripe(env, localstripe_url)
    acme = await shop(env, billingProvider="STRIPE", **contract_fields)
    stripe_customer = await create_stripe_customer(localstripe_url, "acme@example.com", card)
    await data(
        env, LINK, input={"customerId": acme.customer_id, "stripeCustomerId": stripe_customer}
    )
    return StripeShop(acme.customer_id, acme.contract_id, stripe_customer)


async def finalize_april(env: Env, customer_id: str, tokens: int = 1234) -> dict[str, Any]:
    """Use ``tokens`` in April, run the jobs past May 2 (end + grace): the April invoice."""
    await send(env, llm("t1", "acme", tokens, at="2026-04-05T00:00:00Z"))
    env.clock.set(at("2026-05-02T00:00:00Z"))
    await env.run_jobs()
    found = await data(env, INVOICES, id=customer_id)
    (invoice,) = found["customer"]["invoices"]["nodes"]
    return dict(invoice)


async def at_provider(env: Env, invoice_id: str) -> dict[str, Any]:
    found = await data(env, AT_PROVIDER, id=invoice_id)
    return dict(found["invoice"]["billingProvider"])


async def stripe_invoice(localstripe_url: str, stripe_invoice_id: str) -> Any:
    return await stripe_client(localstripe_url).v1.invoices.retrieve_async(stripe_invoice_id)


async def stripe_invoices_of(localstripe_url: str, stripe_customer_id: str) -> list[Any]:
    found = await stripe_client(localstripe_url).v1.invoices.list_async(
        {"customer": stripe_customer_id}
    )
    return list(found.data)


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """A Stripe webhook body and its ``Stripe-Signature`` header, as Stripe signs them."""
    body = json.dumps(event).encode()
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={stamp},v1={mac}"


def stripe_event(event_id: str, type: str, stripe_invoice_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": type,
        "created": int(time.time()),
        "data": {"object": {"id": stripe_invoice_id, "object": "invoice"}},
    }


async def post_stripe_event(env: Env, body: bytes, signature: str | None) -> Any:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["stripe-signature"] = signature
    return await env.client.post("/webhooks/stripe", content=body, headers=headers)
