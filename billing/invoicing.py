"""Assemble the invoice of one contract period (SPEC §6), draft or final, and finalize it.

``assemble`` is pure and deterministic: the same inputs give the same invoice. A draft is
exactly what finalization would produce if the period ended now.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from billing.catalog import Product, ProductType, RateCard
from billing.charges import (
    commit_purchase_lines,
    composite_lines,
    scheduled_lines,
    subscription_lines,
    trueup_lines,
)
from billing.contracts import Contract
from billing.drawdown import (
    BalanceKind,
    BalanceSegment,
    Charge,
    Deduction,
    LedgerEntry,
    LedgerEntryType,
    available_balances,
    contract_segments,
    deduction_entries,
    draw_down,
)
from billing.errors import ConflictError, NotFoundError
from billing.invoices import Invoice, InvoiceLine, InvoiceStatus, LineType, UnratedUsage, totals
from billing.metering import MetricDefinition
from billing.money import ZERO, exact, zero
from billing.periods import Period
from billing.usage_lines import Partials, usage_lines

Usage = Mapping[str, Partials]
"""Per metric id: the rollup partials ``(group values, partial)`` of the invoice window."""

LINE_ORDER = {line_type: index for index, line_type in enumerate(LineType)}


@dataclass(frozen=True)
class BillingContext:
    """Everything that prices a contract: the contract, its rate card, and the products and
    metrics it may refer to (by id; usage lines follow ``products``' order)."""

    contract: Contract
    rate_card: RateCard
    products: Mapping[str, Product]
    metrics: Mapping[str, MetricDefinition]

    def product(self, product_id: str) -> Product:
        """The product ``product_id``; raises ``NotFoundError`` if it is unknown."""
        try:
            return self.products[product_id]
        except KeyError:
            raise NotFoundError(f"product {product_id!r} not found") from None

    def metric(self, metric_id: str) -> MetricDefinition:
        """The metric ``metric_id``; raises ``NotFoundError`` if it is unknown."""
        try:
            return self.metrics[metric_id]
        except KeyError:
            raise NotFoundError(f"billable metric {metric_id!r} not found") from None


def _applied_line(segment: BalanceSegment, amount: Decimal, period: Period) -> InvoiceLine:
    kind = (
        LineType.CREDIT_APPLIED if segment.kind is BalanceKind.CREDIT else LineType.COMMIT_APPLIED
    )
    return InvoiceLine(
        type=kind,
        product_id=segment.product_id,
        name=segment.name,
        quantity=Decimal(1),
        unit_price=-amount,
        amount=-amount,
        starting_at=period.starting_at,
        ending_before=period.ending_before,
        balance_id=segment.id,
    )


def _usage_and_subscriptions(
    context: BillingContext, period: Period, usage: Usage
) -> tuple[list[InvoiceLine], list[UnratedUsage]]:
    contract, rate_card = context.contract, context.rate_card
    lines: list[InvoiceLine] = []
    unrated: list[UnratedUsage] = []
    for product in context.products.values():
        if product.type is not ProductType.USAGE or product.billable_metric_id is None:
            continue
        partials = usage.get(product.billable_metric_id, ())
        if partials:
            metric = context.metric(product.billable_metric_id)
            found = usage_lines(product, metric, partials, rate_card, contract.overrides, period)
            lines += found[0]
            unrated += found[1]
    for subscription in contract.subscriptions:
        product = context.product(subscription.product_id)
        found = subscription_lines(subscription, product, contract, rate_card, period)
        lines += found[0]
        unrated += found[1]
    return lines, unrated


@exact
def assemble(
    context: BillingContext,
    period: Period,
    usage: Usage,
    available: Mapping[str, Decimal],
    status: InvoiceStatus = InvoiceStatus.DRAFT,
) -> Invoice:
    """The invoice of ``context.contract`` for ``period``.

    ``usage``: per metric id, the partials of the events counted in the period (the
    storage layer applies the grace rule). ``available``: per balance segment id, what is
    left to draw before this invoice (ledger balance minus earlier open drafts; a segment
    missing from it counts at its full amount).

    Lines in SPEC §6 order: usage, subscription, scheduled, commit_purchase,
    commit_trueup, composite, then credit_applied / commit_applied. Usage and subscription
    lines draw the credits and commits usable in the period; each line amount is rounded
    ROUND_HALF_UP to the minor unit; ``subtotal`` is the sum of positive lines and
    ``total`` = subtotal + applied lines, never below 0.
    """
    contract, currency = context.contract, context.rate_card.currency
    segments = [
        s
        for s in contract_segments(contract, period.ending_before)
        if period.overlaps(s.starting_at, s.ending_before)
    ]
    charged, unrated = _usage_and_subscriptions(context, period, usage)
    deductions = (
        draw_down(
            [Charge(line.product_id or "", line.amount) for line in charged],
            segments,
            available,
            period,
            currency,
        )
        if segments
        else ()
    )
    drawn = {d.segment_id: d.amount for d in deductions}
    remaining = {
        s.id: available.get(s.id, s.amount) - drawn.get(s.id, ZERO)
        for s in segments
        if s.kind is BalanceKind.POSTPAID_COMMIT
    }
    composite, composite_unrated = composite_lines(
        list(context.products.values()), charged, contract, context.rate_card, period
    )
    by_id = {s.id: s for s in segments}
    lines = [
        *charged,
        *scheduled_lines(contract.scheduled_charges, period, currency),
        *commit_purchase_lines(contract.commits, period, currency),
        *trueup_lines(contract, period, remaining, currency),
        *composite,
        *(
            _applied_line(by_id[d.segment_id], d.amount, period)
            for d in deductions
            if d.kind is not BalanceKind.POSTPAID_COMMIT
        ),
    ]
    lines.sort(key=lambda line: LINE_ORDER[line.type])
    subtotal, total = totals(lines, zero(currency))
    return Invoice(
        contract_id=contract.id,
        customer_id=contract.customer_id,
        currency=currency,
        starting_at=period.starting_at,
        ending_before=period.ending_before,
        status=status,
        lines=tuple(lines),
        unrated_usage=tuple(unrated + composite_unrated),
        subtotal=subtotal,
        total=total,
        deductions=deductions,
    )


def open_drafts(
    context: BillingContext,
    windows: Sequence[tuple[Period, Usage]],
    ledgers: Mapping[str, Sequence[LedgerEntry]],
) -> Iterator[tuple[Period, Usage, dict[str, Decimal], Invoice]]:
    """The drafts of every open period of a contract, oldest first, each with its window's
    usage and what it could draw: what the ledger holds minus what the older drafts draw
    (so no balance is spent twice). ``ledgers``: per segment id, its recorded entries."""
    ordered = sorted(windows, key=lambda window: window[0].starting_at)
    if not ordered:
        return
    segments = contract_segments(context.contract, ordered[-1][0].ending_before)
    pending: list[Deduction] = []
    for period, usage in ordered:
        available = available_balances(segments, ledgers, pending)
        invoice = assemble(context, period, usage, available)
        pending += invoice.deductions
        yield period, usage, available, invoice


@exact
def assemble_open(
    context: BillingContext,
    windows: Sequence[tuple[Period, Usage]],
    ledgers: Mapping[str, Sequence[LedgerEntry]],
) -> tuple[Invoice, ...]:
    """The drafts of :func:`open_drafts`, oldest first."""
    return tuple(invoice for *_, invoice in open_drafts(context, windows, ledgers))


@exact
def finalize(
    invoice: Invoice, invoice_id: str, at: datetime
) -> tuple[Invoice, tuple[LedgerEntry, ...]]:
    """Freeze a draft: the finalized invoice and its ledger entries, one
    ``automated_invoice_deduction`` per segment drawn, plus an ``expiration`` entry per
    postpaid commit settled by a true-up line (its shortfall is now charged).
    Raises ``ConflictError`` if ``invoice`` is not a draft."""
    if invoice.status is not InvoiceStatus.DRAFT:
        raise ConflictError(f"invoice is {invoice.status.value}, only a draft can be finalized")
    entries = list(deduction_entries(invoice.deductions, invoice_id, at))
    entries += [
        LedgerEntry(line.balance_id, LedgerEntryType.EXPIRATION, -line.amount, at, invoice_id)
        for line in invoice.lines
        if line.type is LineType.COMMIT_TRUEUP and line.balance_id is not None
    ]
    return replace(invoice, status=InvoiceStatus.FINALIZED), tuple(entries)
