"""Cost preview (SPEC §6) and the difference between two invoices, as pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.invoices import Invoice, InvoiceLine, LineType
from billing.invoicing import BillingContext, Usage, assemble
from billing.metering import GroupValues, RollupPartial, UsageEvent, match_event
from billing.money import ZERO, exact
from billing.periods import Period


class PreviewMode(StrEnum):
    MERGE = "merge"
    REPLACE = "replace"


LineKey = tuple[LineType, str | None, str, GroupValues, datetime, str | None]


@dataclass(frozen=True)
class LineDelta:
    """A line present before, after, or both; quantities/amounts are 0 where absent."""

    type: LineType
    product_id: str | None
    name: str
    group: GroupValues
    starting_at: datetime
    quantity_before: Decimal
    quantity_after: Decimal
    amount_before: Decimal
    amount_after: Decimal

    @property
    def amount_delta(self) -> Decimal:
        """``amount_after - amount_before``."""
        return self.amount_after - self.amount_before


@dataclass(frozen=True)
class InvoiceDiff:
    """Per changed line, and the change of subtotal and total (after - before)."""

    lines: tuple[LineDelta, ...]
    subtotal_delta: Decimal
    total_delta: Decimal


def _key(line: InvoiceLine) -> LineKey:
    return (line.type, line.product_id, line.name, line.group, line.starting_at, line.balance_id)


def diff_invoices(before: Invoice, after: Invoice) -> InvoiceDiff:
    """The lines that differ (matched by type, product, name, group, start and balance),
    in ``after``'s line order then the removed ones; unchanged lines are left out."""
    old = {_key(line): line for line in before.lines}
    new = {_key(line): line for line in after.lines}
    deltas: list[LineDelta] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        amounts = (a.amount if a else ZERO, b.amount if b else ZERO)
        quantities = (a.quantity if a else ZERO, b.quantity if b else ZERO)
        if amounts[0] == amounts[1] and quantities[0] == quantities[1]:
            continue
        line_type, product_id, name, group, starting_at, _ = key
        deltas.append(
            LineDelta(line_type, product_id, name, group, starting_at, *quantities, *amounts)
        )
    return InvoiceDiff(tuple(deltas), after.subtotal - before.subtotal, after.total - before.total)


@dataclass(frozen=True)
class Preview:
    current: Invoice
    preview: Invoice
    diff: InvoiceDiff


def partials_of(
    context: BillingContext, events: Iterable[UsageEvent], period: Period
) -> dict[str, list[tuple[GroupValues, RollupPartial]]]:
    """Per metric id, the partials of the ``events`` stamped inside ``period`` that match
    (each event may match several metrics)."""
    found: dict[str, list[tuple[GroupValues, RollupPartial]]] = {}
    for event in events:
        if not period.contains(event.timestamp):
            continue
        for metric in context.metrics.values():
            result = match_event(metric, event)
            if result.partial is not None:
                found.setdefault(metric.id, []).append((result.group_values, result.partial))
    return found


@exact
def preview_costs(
    context: BillingContext,
    period: Period,
    usage: Usage,
    events: Iterable[UsageEvent],
    mode: PreviewMode,
    available: Mapping[str, Decimal],
) -> Preview:
    """The draft of ``period`` as it is, and as it would be with hypothetical ``events``
    added to the period's usage (``merge``) or instead of it (``replace``). Nothing is
    stored; events outside the period are ignored."""
    extra = partials_of(context, events, period)
    if mode is PreviewMode.MERGE:
        merged = {k: [*usage.get(k, ()), *extra.get(k, ())] for k in {*usage, *extra}}
    else:
        merged = extra
    current = assemble(context, period, usage, available)
    hypothetical = assemble(context, period, merged, available)
    return Preview(current, hypothetical, diff_invoices(current, hypothetical))
