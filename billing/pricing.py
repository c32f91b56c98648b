"""From a metric quantity to a billed quantity, and from a billed quantity to an amount.

Order per invoice line (SPEC §3): quantity conversion (multiply/divide, exact), then
quantity rounding (``decimal_places`` with round_up = toward +infinity, round_down = toward
-infinity, round_half_up), then pricing. Every amount returned here is rounded ROUND_HALF_UP
to the currency's minor unit (:func:`billing.money.round_money`); a graduated amount is the
sum of its rounded tier amounts, so the breakdown always adds up to the line.

Pricing works on a *slice* of a pricing group: units ``[start, start + quantity)`` of a
group whose total is ``group_total``. A line that is the whole group uses ``start = 0`` and
``group_total = quantity``; presentation lines of one pricing group take consecutive slices,
so tiers and packages count the group's total and never depend on the presentation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from billing.catalog import (
    ConversionOperation,
    PriceSpec,
    Product,
    RateType,
    RoundingMethod,
    Tier,
    TierMode,
)
from billing.errors import ValidationError
from billing.money import ZERO, round_money

_ROUNDING = {
    RoundingMethod.ROUND_UP: ROUND_CEILING,
    RoundingMethod.ROUND_DOWN: ROUND_FLOOR,
    RoundingMethod.ROUND_HALF_UP: ROUND_HALF_UP,
}


@dataclass(frozen=True)
class TierAmount:
    """Units of one tier on a line: the tier's first unit (``starting_at``, a quantity),
    how many units of the line fall in it, its price and the rounded amount."""

    starting_at: Decimal
    quantity: Decimal
    price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Priced:
    """An amount (rounded to the minor unit), the one unit price when one price applies,
    and the tier breakdown of tiered rates (amounts sum to ``amount`` for graduated)."""

    amount: Decimal
    unit_price: Decimal | None
    tiers: tuple[TierAmount, ...] = ()


def convert_quantity(product: Product, quantity: Decimal) -> Decimal:
    """The billed quantity of ``product`` for a metric ``quantity``: conversion first
    (exact multiply, or divide at 28 significant digits), then the product's rounding.
    Without a rounding rule the converted quantity is returned unrounded."""
    conversion = product.quantity_conversion
    if conversion is not None:
        if conversion.operation is ConversionOperation.MULTIPLY:
            quantity = quantity * conversion.conversion_factor
        else:
            quantity = quantity / conversion.conversion_factor
    rounding = product.quantity_rounding
    if rounding is not None:
        exponent = Decimal(1).scaleb(-rounding.decimal_places)
        quantity = quantity.quantize(exponent, rounding=_ROUNDING[rounding.rounding_method])
    return quantity


def _required(value: Decimal | None, field: str) -> Decimal:
    if value is None:
        raise ValidationError(field, "is required for this rate type")
    return value


def _tier_bounds(tiers: tuple[Tier, ...]) -> list[tuple[Decimal, Decimal | None, Decimal]]:
    """``(first unit, end unit or None, price)`` of every tier."""
    bounds: list[tuple[Decimal, Decimal | None, Decimal]] = []
    low = ZERO
    for tier in tiers:
        high = None if tier.size is None else low + tier.size
        bounds.append((low, high, tier.price))
        if high is None:
            break
        low = high
    return bounds


def _volume_tier(
    tiers: tuple[Tier, ...], group_total: Decimal
) -> tuple[Decimal, Decimal | None, Decimal]:
    """The tier a group total reaches: the first whose end is >= the total (inclusive)."""
    bounds = _tier_bounds(tiers)
    for bound in bounds:
        if bound[1] is None or group_total <= bound[1]:
            return bound
    return bounds[-1]


def _graduated(tiers: tuple[Tier, ...], start: Decimal, quantity: Decimal, currency: str) -> Priced:
    bounds = _tier_bounds(tiers)
    if quantity < 0:
        low, _, price = bounds[0]
        amount = round_money(quantity * price, currency)
        return Priced(amount, price, (TierAmount(low, quantity, price, amount),))
    end = start + quantity
    rows: list[TierAmount] = []
    for low, high, price in bounds:
        overlap = (end if high is None else min(high, end)) - max(low, start)
        if overlap > 0:
            rows.append(TierAmount(low, overlap, price, round_money(overlap * price, currency)))
    total = sum((row.amount for row in rows), round_money(ZERO, currency))
    unit_price = rows[0].price if len(rows) == 1 else None
    return Priced(total, unit_price, tuple(rows))


def _started_packages(units: Decimal, size: Decimal) -> Decimal:
    return (units / size).to_integral_value(rounding=ROUND_CEILING)


def price_units(
    spec: PriceSpec,
    quantity: Decimal,
    currency: str,
    start: Decimal = ZERO,
    group_total: Decimal | None = None,
) -> Priced:
    """Price ``quantity`` units, being units ``[start, start + quantity)`` of a pricing
    group totalling ``group_total`` (default: ``start + quantity``).

    - ``flat`` / ``subscription``: quantity * price.
    - ``tiered`` graduated: each unit at the price of the tier it falls in; one breakdown
      row per tier touched, each rounded; a negative quantity is priced at the first tier.
    - ``tiered`` volume: every unit at the price of the tier the group total reaches (a
      total equal to a tier's end stays in that tier).
    - ``package``: price per started ``package_size`` (0 units cost 0, 1 unit one package),
      counted on the group total: the slice pays for the packages that start inside it.
    - ``percentage``: ``quantity`` is the base spend; amount = base * fraction.
    """
    total = start + quantity if group_total is None else group_total
    rate_type = spec.rate_type
    if rate_type in (RateType.FLAT, RateType.SUBSCRIPTION):
        price = _required(spec.price, "price")
        return Priced(round_money(quantity * price, currency), price)
    if rate_type is RateType.PERCENTAGE:
        fraction = _required(spec.fraction, "fraction")
        return Priced(round_money(quantity * fraction, currency), fraction)
    if rate_type is RateType.PACKAGE:
        price = _required(spec.price, "price")
        size = _required(spec.package_size, "package_size")
        packages = _started_packages(start + quantity, size) - _started_packages(start, size)
        return Priced(round_money(packages * price, currency), None)
    if not spec.tiers:
        raise ValidationError("tiers", "a tiered rate needs at least one tier")
    if spec.tier_mode is TierMode.GRADUATED:
        return _graduated(spec.tiers, start, quantity, currency)
    low, _, price = _volume_tier(spec.tiers, total)
    amount = round_money(quantity * price, currency)
    return Priced(amount, price, (TierAmount(low, quantity, price, amount),))
