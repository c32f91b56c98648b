"""A finalized invoice as a payment provider takes it (SPEC §11), and what the provider's
payment events do to it. Pure: the Stripe calls are in ``integrations.stripe``.

Amounts are integers in the provider's unit of the currency: its minor unit (cents for
USD), except where Stripe differs from ISO 4217 (ISK: Stripe keeps two decimals, so 1 króna
is 100). Credits and commits drawn down are negative items, so the items of an invoice add
up to its total exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from billing.errors import ValidationError
from billing.invoices import Invoice, InvoiceLine
from billing.money import exact, minor_units

PROVIDER_PLACES: dict[str, int] = {"ISK": 2}
"""Currencies whose decimal places in Stripe's API differ from ISO 4217's minor unit."""


def provider_amount(amount: Decimal, currency: str) -> int:
    """``amount`` as the integer Stripe takes (12.34 USD → 1234, 500 JPY → 500, 5 ISK →
    500). Exact: raises ``ValidationError("amount", ...)`` when ``amount`` has more places
    than the currency's minor unit (invoice lines are already rounded to it)."""
    if amount != amount.quantize(Decimal(1).scaleb(-minor_units(currency))):
        raise ValidationError("amount", f"{amount} {currency} is not a whole minor unit")
    places = PROVIDER_PLACES.get(currency, minor_units(currency))
    return int(amount.scaleb(places))


def from_provider_amount(amount: int, currency: str) -> Decimal:
    """The inverse of :func:`provider_amount` (1234 USD → 12.34), exact."""
    places = PROVIDER_PLACES.get(currency, minor_units(currency))
    return Decimal(amount).scaleb(-places)


@dataclass(frozen=True)
class ProviderItem:
    """One invoice item: ``key`` is stable for the invoice's line (its index), so a retried
    push can recognise what it already created; ``amount`` is in minor units (negative for
    credits and commits applied)."""

    key: str
    amount: int
    currency: str
    description: str
    line_type: str


def _description(line: InvoiceLine) -> str:
    groups = ", ".join(f"{k}={v}" for k, v in line.group)
    name = f"{line.name} ({groups})" if groups else line.name
    if line.unit_price is not None:
        return f"{name}: {line.quantity} × {line.unit_price}"
    return name


@exact
def provider_items(invoice: Invoice) -> tuple[ProviderItem, ...]:
    """One item per non-zero line of ``invoice``, in line order; zero lines change nothing
    owed and are left out. Invariant: the items' amounts sum to :func:`provider_total`
    (raises ``ValidationError`` otherwise, which only a total floored at zero could
    cause)."""
    currency = invoice.currency
    items = tuple(
        ProviderItem(
            key=str(index),
            amount=provider_amount(line.amount, currency),
            currency=currency.lower(),
            description=_description(line),
            line_type=line.type.value,
        )
        for index, line in enumerate(invoice.lines)
        if line.amount
    )
    if sum(item.amount for item in items) != provider_total(invoice):
        raise ValidationError("lines", "the invoice's lines do not add up to its total")
    return items


@exact
def provider_total(invoice: Invoice) -> int:
    """The invoice's total as Stripe counts it (see :func:`provider_amount`)."""
    return provider_amount(invoice.total, invoice.currency)


class SyncStatus(StrEnum):
    """Where the push of one invoice to its provider stands."""

    PENDING = "pending"  # to push (or to retry)
    SYNCED = "synced"  # the provider holds it, finalized
    SKIPPED = "skipped"  # not sent: a zero total, or voided before it was pushed
    BILLING_PROVIDER_ERROR = "billing_provider_error"  # retries ran out or were pointless


class PaymentStatus(StrEnum):
    """The invoice's payment as the provider reports it."""

    NONE = "none"  # not with a provider (yet)
    OPEN = "open"  # finalized at the provider, awaiting payment
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    VOID = "void"  # voided at the provider


PROVIDER_EVENTS: dict[str, PaymentStatus] = {
    "invoice.paid": PaymentStatus.PAID,
    "invoice.payment_succeeded": PaymentStatus.PAID,
    "invoice.payment_failed": PaymentStatus.PAYMENT_FAILED,
    "invoice.marked_uncollectible": PaymentStatus.PAYMENT_FAILED,
    "invoice.voided": PaymentStatus.VOID,
}
"""Stripe event types that move an invoice's payment status; any other is acknowledged
and ignored."""


def next_payment_status(current: PaymentStatus, reported: PaymentStatus) -> PaymentStatus:
    """The payment status after the provider reports ``reported`` (or, for ``open``, after
    the push finalized the invoice there). ``paid`` and ``void`` are final: a late
    ``payment_failed`` (events arrive out of order) never undoes a payment, and a failure
    followed by a successful retry becomes ``paid``. ``open`` only follows ``none``: a
    payment event that beat the push's own bookkeeping is kept."""
    if current in (PaymentStatus.PAID, PaymentStatus.VOID):
        return current
    if reported is PaymentStatus.OPEN and current is not PaymentStatus.NONE:
        return current
    return reported
