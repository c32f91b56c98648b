"""Usage lines of one product for one period, from metric rollup partials (SPEC §3, §4).

One line per pricing group values x presentation group values. Each line's metric quantity
is converted and rounded on its own (SPEC §3: per invoice line); the lines of one pricing
group are then priced as consecutive slices of the group's total (sorted by group values),
so tiers and packages count the pricing group's total and the presentation split never
changes what the group costs beyond per-line cent rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from billing.catalog import Product, RateCard
from billing.contracts import Override
from billing.invoices import InvoiceLine, LineType, UnratedUsage
from billing.metering import GroupValues, MetricDefinition, RollupPartial, aggregate, project
from billing.money import ZERO
from billing.periods import Period
from billing.pricing import convert_quantity, price_units
from billing.rates import UnratedReason, effective_spec

Partials = Sequence[tuple[GroupValues, RollupPartial]]


def usage_lines(
    product: Product,
    metric: MetricDefinition,
    partials: Partials,
    rate_card: RateCard,
    overrides: Sequence[Override],
    period: Period,
) -> tuple[list[InvoiceLine], list[UnratedUsage]]:
    """The usage lines and the unrated usage of ``product`` over ``period``.

    Rates and overrides are those in force at ``period.starting_at``. Every group present
    in ``partials`` gets a line (possibly of quantity 0) or an unrated entry; nothing is
    dropped. Amounts are rounded per line (per tier for graduated rates).
    """
    keys = product.pricing_group_key + product.presentation_group_key
    by_pricing_group: dict[GroupValues, list[tuple[GroupValues, Decimal]]] = {}
    for group, raw in sorted(aggregate(metric, partials, keys).items()):
        pricing_group = project(group, product.pricing_group_key)
        billed = convert_quantity(product, raw)
        by_pricing_group.setdefault(pricing_group, []).append((group, billed))
    lines: list[InvoiceLine] = []
    unrated: list[UnratedUsage] = []
    for pricing_group, members in by_pricing_group.items():
        spec = effective_spec(rate_card, overrides, product.id, pricing_group, period.starting_at)
        if isinstance(spec, UnratedReason):
            unrated.extend(UnratedUsage(product.id, g, q, spec) for g, q in members)
            continue
        group_total = sum((q for _, q in members), ZERO)
        start = ZERO
        for group, billed in members:
            priced = price_units(spec, billed, rate_card.currency, start, group_total)
            start += billed
            lines.append(
                InvoiceLine(
                    type=LineType.USAGE,
                    product_id=product.id,
                    name=product.name,
                    quantity=billed,
                    unit_price=priced.unit_price,
                    amount=priced.amount,
                    starting_at=period.starting_at,
                    ending_before=period.ending_before,
                    group=group,
                    tiers=priced.tiers,
                )
            )
    return lines, unrated
