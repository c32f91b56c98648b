"""The non-usage lines of an invoice: subscriptions, scheduled charges, commit purchases,
commit true-ups and composite (percentage) lines. Amounts are rounded per line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from billing.catalog import Product, ProductType, RateCard
from billing.contracts import Commit, CommitType, Contract, ScheduledCharge, Subscription
from billing.invoices import InvoiceLine, LineType, UnratedUsage
from billing.money import ZERO, round_money
from billing.periods import Period, full_period_at, proration_fraction
from billing.pricing import price_units
from billing.rates import UnratedReason, effective_spec


def _quantity_at(subscription: Subscription, moment: datetime) -> Decimal:
    before = [c for c in subscription.quantity_schedule if c.starting_at <= moment]
    return max(before, key=lambda c: c.starting_at).quantity if before else ZERO


def subscription_lines(
    subscription: Subscription,
    product: Product,
    contract: Contract,
    rate_card: RateCard,
    period: Period,
) -> tuple[list[InvoiceLine], list[UnratedUsage]]:
    """Lines of ``subscription`` for ``period``, charged in advance at the price in force
    at the period start (overrides applied).

    - The quantity in force at the period start is charged for the period. With
      ``proration``, a period cut by the contract's start or end is charged
      price * quantity * (cut length / full period length).
    - Each mid-period increase above the highest quantity charged so far in the period adds
      a line for the added units from the change: with ``proration`` prorated by seconds
      remaining / seconds in the full period, without it at the full period price.
      Decreases take effect next period (no line, no refund).
    Each amount is rounded once, ROUND_HALF_UP to the minor unit.
    """
    spec = effective_spec(rate_card, contract.overrides, product.id, (), period.starting_at)
    opening = _quantity_at(subscription, period.starting_at)
    if isinstance(spec, UnratedReason):
        return [], [UnratedUsage(product.id, (), opening, spec)] if opening else []
    full = full_period_at(contract.schedule, period.starting_at)
    changes = sorted(
        (c.starting_at, c.quantity)
        for c in subscription.quantity_schedule
        if period.starting_at < c.starting_at < period.ending_before
    )
    steps = [(period.starting_at, opening), *changes]
    lines: list[InvoiceLine] = []
    charged = ZERO
    for moment, quantity in steps:
        added = quantity - charged
        if added <= 0:
            continue
        charged = quantity
        share = (
            proration_fraction(full, moment, period.ending_before)
            if subscription.proration
            else Decimal(1)
        )
        priced = price_units(spec, added, rate_card.currency)
        base = priced.amount if priced.unit_price is None else priced.unit_price * added
        lines.append(
            InvoiceLine(
                type=LineType.SUBSCRIPTION,
                product_id=product.id,
                name=product.name,
                quantity=added,
                unit_price=priced.unit_price,
                amount=round_money(base * share, rate_card.currency),
                starting_at=moment,
                ending_before=period.ending_before,
            )
        )
    return lines, []


def _one_off(
    line_type: LineType,
    product_id: str,
    name: str,
    amount: Decimal,
    period: Period,
    currency: str,
    balance_id: str | None = None,
) -> InvoiceLine:
    rounded = round_money(amount, currency)
    return InvoiceLine(
        type=line_type,
        product_id=product_id,
        name=name,
        quantity=Decimal(1),
        unit_price=rounded,
        amount=rounded,
        starting_at=period.starting_at,
        ending_before=period.ending_before,
        balance_id=balance_id,
    )


def scheduled_lines(
    charges: Sequence[ScheduledCharge], period: Period, currency: str
) -> list[InvoiceLine]:
    """One ``scheduled`` line (quantity 1) per charge whose ``timestamp`` is in ``period``,
    ordered by timestamp then id."""
    due = sorted(
        (c for c in charges if period.contains(c.timestamp)), key=lambda c: (c.timestamp, c.id)
    )
    return [
        _one_off(LineType.SCHEDULED, c.product_id, c.name, c.amount, period, currency) for c in due
    ]


def commit_purchase_lines(
    commits: Sequence[Commit], period: Period, currency: str
) -> list[InvoiceLine]:
    """One ``commit_purchase`` line of ``amount`` per prepaid commit whose ``invoice_at``
    (default ``starting_at``) is in ``period``."""
    due = [
        c
        for c in commits
        if c.type is CommitType.PREPAID
        and period.contains(c.invoice_at if c.invoice_at is not None else c.starting_at)
    ]
    return [
        _one_off(LineType.COMMIT_PURCHASE, c.product_id, c.name, c.amount, period, currency, c.id)
        for c in due
    ]


def trueup_lines(
    contract: Contract,
    period: Period,
    remaining: Mapping[str, Decimal],
    currency: str,
) -> list[InvoiceLine]:
    """A ``commit_trueup`` line per postpaid commit ending in ``period`` (or still running
    when the contract ends with this period) whose ``remaining`` amount (commit amount minus
    applicable spend so far, this invoice included) is positive."""
    last_period = period.ending_before == contract.ending_before
    return [
        _one_off(
            LineType.COMMIT_TRUEUP, c.product_id, c.name, remaining[c.id], period, currency, c.id
        )
        for c in contract.commits
        if c.type is CommitType.POSTPAID
        and period.starting_at < c.ending_before
        and (c.ending_before <= period.ending_before or last_period)
        and remaining.get(c.id, ZERO) > 0
    ]


def composite_lines(
    products: Sequence[Product],
    lines: Sequence[InvoiceLine],
    contract: Contract,
    rate_card: RateCard,
    period: Period,
) -> tuple[list[InvoiceLine], list[UnratedUsage]]:
    """A ``composite`` line per composite product whose base spend is not 0: base = sum of
    the usage and subscription line amounts of its ``composite_product_ids`` on this
    invoice, before credits; amount = base * fraction (percentage rate in force at the
    period start, overrides applied), rounded. Quantity is the base, unit price the
    fraction. A composite product absent from the rate card is not part of the contract;
    one with rates but none usable is listed as unrated with the base as quantity."""
    composite: list[InvoiceLine] = []
    unrated: list[UnratedUsage] = []
    for product in products:
        if product.type is not ProductType.COMPOSITE:
            continue
        base = sum(
            (
                line.amount
                for line in lines
                if line.type in (LineType.USAGE, LineType.SUBSCRIPTION)
                and line.product_id in product.composite_product_ids
            ),
            ZERO,
        )
        spec = effective_spec(rate_card, contract.overrides, product.id, (), period.starting_at)
        if base == 0 or spec is UnratedReason.NOT_ON_RATE_CARD:
            continue
        if isinstance(spec, UnratedReason):
            unrated.append(UnratedUsage(product.id, (), base, spec))
            continue
        priced = price_units(spec, base, rate_card.currency)
        composite.append(
            InvoiceLine(
                type=LineType.COMPOSITE,
                product_id=product.id,
                name=product.name,
                quantity=base,
                unit_price=priced.unit_price,
                amount=priced.amount,
                starting_at=period.starting_at,
                ending_before=period.ending_before,
            )
        )
    return composite, unrated
