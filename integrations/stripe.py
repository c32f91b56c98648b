"""Stripe (SPEC §11) through the official ``stripe`` library: push a finalized invoice
and void it there (Stripe's webhooks are read by ``integrations.stripe_events``).

A push creates the Stripe invoice as a draft that takes no pending items and no customer
discount, adds one invoice item per line to it, checks the draft's total against ours,
then finalizes it with automatic collection. Every call carries an idempotency key made of
our invoice id, the push's key generation and the step (``meterline-{invoice}-{gen}-item-3``
…); every object made is recorded before the next call, and a resumed push adopts the
items the draft already holds (by their ``meterline_line`` metadata), so a retried push
never makes anything twice, even after Stripe forgot its keys (24 hours).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol, cast

import stripe

from billing.invoices import Invoice
from billing.provider_invoice import ProviderItem, provider_total
from models.store.stripe_accounts import StripeSettings

STRIPE_API = "https://api.stripe.com"
TIMEOUT_SECONDS = 20.0
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
"""Delay after the 1st … 5th failed attempt of a push that Stripe may get over (6 in all,
about 9 hours); then the invoice shows ``billing_provider_error``."""


class StripeFailure(Exception):
    """A Stripe call failed; ``retryable`` says whether the same call may succeed later
    (network, rate limit, Stripe's 5xx, lock contention) or needs a fix first."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.retryable, self.status = message, retryable, status


class TotalMismatch(StripeFailure):
    """Stripe's draft adds up to another total than ours: it is left unfinalized."""

    def __init__(self, stripe_total: int, ours: int) -> None:
        super().__init__(
            f"total mismatch: Stripe's draft has {stripe_total}, Meterline {ours} (in the "
            "currency's smallest unit); the Stripe invoice was not finalized",
            retryable=False,
        )
        self.stripe_total = stripe_total


def _failure(error: stripe.StripeError) -> StripeFailure:
    status = error.http_status
    should_retry = (error.headers or {}).get("stripe-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    else:
        retryable = (
            isinstance(error, stripe.APIConnectionError | stripe.RateLimitError)
            or status is None
            or status >= 500
            or status in (409, 429)
            or error.code == "lock_timeout"
        )
    if isinstance(error, stripe.APIConnectionError) or error.json_body:
        detail = error.user_message or str(error) or type(error).__name__
    else:  # not Stripe's JSON: never echo a body from whatever answered
        detail = f"{type(error).__name__} (the answer was not Stripe's JSON)"
    prefix = f"Stripe answered {status}" if status else "Stripe could not be reached"
    return StripeFailure(f"{prefix}: {detail}", retryable=retryable, status=status)


@dataclass(frozen=True)
class Customer:
    """The Stripe customer an invoice goes to, and how Stripe collects it."""

    stripe_customer_id: str
    collection_method: str
    days_until_due: int


@dataclass(frozen=True)
class Pushed:
    """The finalized Stripe invoice: its id, status, and total before tax (Stripe's unit)."""

    stripe_invoice_id: str
    status: str
    total: int


class Progress(Protocol):
    """Records what Stripe made (``items=`` line key → item id, or ``stripe_invoice_id=``
    with the customer it was made for) as soon as it exists; raises to stop the push."""

    async def __call__(self, **made: Any) -> None: ...


class StripeConnection:
    """The organization's Stripe account, reached with its secret key."""

    def __init__(self, settings: StripeSettings) -> None:
        self._http = stripe.HTTPXClient(timeout=TIMEOUT_SECONDS)
        self._client = stripe.StripeClient(
            settings.secret_key,
            base_addresses={"api": settings.api_base or STRIPE_API},
            http_client=self._http,
            max_network_retries=0,  # the job retries, with the same idempotency keys
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def _call(self, request: Awaitable[Any]) -> Any:
        try:
            return await request
        except stripe.StripeError as error:
            raise _failure(error) from error

    async def push(
        self,
        keys: Keys,
        invoice: Invoice,
        items: Sequence[ProviderItem],
        customer: Customer,
        stripe_invoice_id: str | None,
        items_made: dict[str, str],
        progress: Progress,
    ) -> Pushed:
        """Make (or finish making) the Stripe invoice of ``invoice``: ``stripe_invoice_id``
        is the one a previous attempt created, ``items_made`` the items it recorded.
        Raises :class:`TotalMismatch` (before finalizing) when the draft's total is not
        ours, :class:`StripeFailure` when a call fails."""
        v1 = self._client.v1
        if stripe_invoice_id is None:
            params: dict[str, Any] = {
                "customer": customer.stripe_customer_id,
                "collection_method": customer.collection_method,
                "pending_invoice_items_behavior": "exclude",
                "discounts": "",  # the customer's coupon would change the total
                "auto_advance": False,
                "currency": invoice.currency.lower(),
                "description": _describe(keys.invoice_id, invoice),
                "metadata": {"meterline_invoice_id": keys.invoice_id},
            }
            if customer.collection_method == "send_invoice":
                params["days_until_due"] = customer.days_until_due
            created = await self._call(
                v1.invoices.create_async(cast(Any, params), keys.options("invoice"))
            )
            await progress(
                stripe_invoice_id=created.id,
                stripe_customer_id=customer.stripe_customer_id,
                collection_method=customer.collection_method,
            )
            stripe_id, status = created.id, created.status
        else:
            stripe_id, status = stripe_invoice_id, await self.status_of(stripe_invoice_id)
        if status == "draft":
            made = {**await self._lines_made(stripe_id, keys.invoice_id), **items_made}
            await self._add_items(keys, stripe_id, customer, items, made, progress)
            draft = await self._call(v1.invoices.retrieve_async(stripe_id))
            ours = provider_total(invoice)
            if _total_before_tax(draft) != ours:
                raise TotalMismatch(_total_before_tax(draft), ours)
            await progress()  # the last word before Stripe collects: still ours to send?
            finalized = await self._call(
                v1.invoices.finalize_invoice_async(
                    stripe_id, {"auto_advance": True}, keys.options("finalize")
                )
            )
        else:
            finalized = await self._call(v1.invoices.retrieve_async(stripe_id))
        return Pushed(stripe_id, finalized.status, _total_before_tax(finalized))

    async def _lines_made(self, stripe_invoice_id: str, invoice_id: str) -> dict[str, str]:
        """The items a draft already holds for our lines (line key → item id): made by an
        attempt whose bookkeeping was lost."""
        found: dict[str, str] = {}
        lines = await self._call(
            self._client.v1.invoices.line_items.list_async(stripe_invoice_id, {"limit": 100})
        )
        try:
            async for line in lines.auto_paging_iter():
                found_metadata = getattr(line, "metadata", None)
                metadata = found_metadata.to_dict() if found_metadata is not None else {}
                key = metadata.get("meterline_line")
                item_id = _item_of(line)
                if metadata.get("meterline_invoice_id") == invoice_id and key and item_id:
                    found.setdefault(str(key), item_id)
        except stripe.StripeError as error:  # a later page
            raise _failure(error) from error
        return found

    async def _add_items(
        self,
        keys: Keys,
        stripe_invoice_id: str,
        customer: Customer,
        items: Sequence[ProviderItem],
        made: dict[str, str],
        progress: Progress,
    ) -> None:
        for item in items:
            if item.key in made:
                continue
            created = await self._call(
                self._client.v1.invoice_items.create_async(
                    {
                        "customer": customer.stripe_customer_id,
                        "invoice": stripe_invoice_id,
                        "amount": item.amount,
                        "currency": item.currency,
                        "description": item.description,
                        "metadata": {
                            "meterline_invoice_id": keys.invoice_id,
                            "meterline_line": item.key,
                            "meterline_line_type": item.line_type,
                        },
                    },
                    keys.options(f"item-{item.key}"),
                )
            )
            made = {**made, item.key: created.id}
            await progress(items=made)

    async def status_of(self, stripe_invoice_id: str) -> str:
        found = await self._call(self._client.v1.invoices.retrieve_async(stripe_invoice_id))
        return str(found.status)

    async def void(self, keys: Keys, stripe_invoice_id: str) -> str:
        """Void an open Stripe invoice, delete a draft one (a push that never finished);
        a paid or void one is left alone. Returns Stripe's status before: draft (now
        deleted), open, uncollectible, paid (money was taken) or void (also a zero total
        Stripe marked paid: nothing to refund)."""
        v1 = self._client.v1
        try:
            found = await self._call(v1.invoices.retrieve_async(stripe_invoice_id))
        except StripeFailure as failure:
            if failure.status == 404:  # another key or account than the push's
                raise StripeFailure(
                    f"Stripe does not know invoice {stripe_invoice_id} (was the secret key "
                    "changed to another account or mode?): void it in Stripe by hand",
                    retryable=False,
                    status=404,
                ) from failure
            raise
        status = str(found.status)
        if status == "draft":
            await self._call(v1.invoices.delete_async(stripe_invoice_id))
        elif status in ("open", "uncollectible"):
            await self._call(
                v1.invoices.void_invoice_async(stripe_invoice_id, options=keys.options("void"))
            )
        elif status == "paid" and not getattr(found, "amount_paid", 0):
            return "void"
        return status


@dataclass(frozen=True)
class Keys:
    """The idempotency keys of one push: our invoice id, the generation (moved on by
    ``retryInvoiceSync``, so a retry after a fix is not answered from Stripe's cache of the
    failed call) and the step."""

    invoice_id: str
    generation: int

    def options(self, step: str) -> Any:
        return {"idempotency_key": f"meterline-{self.invoice_id}-{self.generation}-{step}"}


def _item_of(line: Any) -> str | None:
    """The invoice item behind a Stripe invoice line (older and newer API shapes)."""
    item = getattr(line, "invoice_item", None)
    if item is None:
        details = getattr(getattr(line, "parent", None), "invoice_item_details", None)
        item = getattr(details, "invoice_item", None)
    return None if item is None else str(item)


def _describe(invoice_id: str, invoice: Invoice) -> str:
    start, end = invoice.starting_at, invoice.ending_before
    return f"Meterline invoice {invoice_id}, {start:%Y-%m-%d} to {end:%Y-%m-%d}"


def _total_before_tax(found: Any) -> int:
    """Stripe's ``total_excluding_tax`` (tax Stripe adds is not a mismatch), or ``total``
    where the API does not give it."""
    value = getattr(found, "total_excluding_tax", None)
    return int(found.total if value is None else value)
