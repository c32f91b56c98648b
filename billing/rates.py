"""Which price applies to a line: the rate in force, the winning override, or the reason
the line is unrated (SPEC §4, §5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.catalog import PriceSpec, Rate, RateCard, Tier
from billing.contracts import Override, OverrideType
from billing.errors import ValidationError
from billing.metering import GroupValues


class UnratedReason(StrEnum):
    """Why usage is not charged; it is listed under ``unrated_usage``, never dropped."""

    NOT_ON_RATE_CARD = "not_on_rate_card"
    """The rate card has no rate for the product at any time."""
    NO_RATE_IN_FORCE = "no_rate_in_force"
    """The product has rates, but none in force at the line's period start."""
    NO_RATE_FOR_GROUP_VALUES = "no_rate_for_group_values"
    """Rates are in force, but none for these pricing group values."""
    NOT_ENTITLED = "not_entitled"
    """The rate in force says the customer is not entitled to the product."""


def find_rate(
    rate_card: RateCard, product_id: str, pricing_group_values: GroupValues, at: datetime
) -> Rate | UnratedReason:
    """The rate of ``product_id`` for exactly ``pricing_group_values`` in force at ``at``
    (the line's period start); when several are, the one starting latest (then the
    greatest id) wins. Returns the :class:`UnratedReason` when there is no usable rate."""
    product_rates = rate_card.rates_by_product.get(product_id, ())
    if not product_rates:
        return UnratedReason.NOT_ON_RATE_CARD
    in_force = [rate for rate in product_rates if rate.in_force_at(at)]
    if not in_force:
        return UnratedReason.NO_RATE_IN_FORCE
    matching = [rate for rate in in_force if rate.pricing_group_values == pricing_group_values]
    if not matching:
        return UnratedReason.NO_RATE_FOR_GROUP_VALUES
    rate = max(matching, key=lambda r: (r.starting_at, r.id))
    return rate if rate.entitled else UnratedReason.NOT_ENTITLED


def _applies(
    override: Override, product_id: str, pricing_group_values: GroupValues, at: datetime
) -> bool:
    if override.product_id != product_id or override.starting_at > at:
        return False
    if override.ending_before is not None and at >= override.ending_before:
        return False
    wanted = override.pricing_group_values
    return wanted is None or set(wanted) <= set(pricing_group_values)


def _priority_key(override: Override) -> tuple[int, int]:
    return (0, override.priority) if override.priority is not None else (1, 0)


def _multiplier(override: Override) -> Decimal:
    return override.multiplier if override.multiplier is not None else Decimal(1)


def select_override(
    overrides: Sequence[Override], product_id: str, pricing_group_values: GroupValues, at: datetime
) -> Override | None:
    """The one override that applies to a line, or None.

    Overwrites beat multipliers. Within a kind, overrides with a ``priority`` beat those
    without and the lowest priority number wins; then, for multipliers, the lowest
    multiplier wins; remaining ties go to the latest ``starting_at``, then the greatest id.
    """
    candidates = [o for o in overrides if _applies(o, product_id, pricing_group_values, at)]
    if not candidates:
        return None
    overwrites = [o for o in candidates if o.type is OverrideType.OVERWRITE]
    latest_first = sorted(
        overwrites or candidates, key=lambda o: (o.starting_at, o.id), reverse=True
    )
    return min(latest_first, key=lambda o: (_priority_key(o), _multiplier(o)))


def _scaled(value: Decimal | None, multiplier: Decimal) -> Decimal | None:
    return None if value is None else value * multiplier


def apply_override(spec: PriceSpec, override: Override | None) -> PriceSpec:
    """``spec`` as changed by ``override``: an overwrite replaces it with
    ``overwrite_rate``; a multiplier scales every price (flat, tier, package, subscription)
    and a percentage's fraction, exactly (no rounding)."""
    if override is None:
        return spec
    if override.type is OverrideType.OVERWRITE:
        if override.overwrite_rate is None:
            raise ValidationError("overwrite_rate", "is required for an overwrite override")
        return override.overwrite_rate
    if override.multiplier is None:
        raise ValidationError("multiplier", "is required for a multiplier override")
    m = override.multiplier
    return replace(
        spec,
        price=_scaled(spec.price, m),
        fraction=_scaled(spec.fraction, m),
        tiers=tuple(Tier(tier.price * m, tier.size) for tier in spec.tiers),
    )


def effective_spec(
    rate_card: RateCard,
    overrides: Sequence[Override],
    product_id: str,
    pricing_group_values: GroupValues,
    at: datetime,
) -> PriceSpec | UnratedReason:
    """The price spec that prices a line of ``product_id`` starting at ``at``: the rate in
    force with the winning override applied, or why there is none. Overrides change the
    price of a rated line; they never rate a line that has no rate."""
    rate = find_rate(rate_card, product_id, pricing_group_values, at)
    if isinstance(rate, UnratedReason):
        return rate
    return apply_override(
        rate.spec, select_override(overrides, product_id, pricing_group_values, at)
    )
