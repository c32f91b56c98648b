"""The price list: products, rates and rate cards (SPEC §3, §4), as plain frozen values.

Ids are ``str``; datetimes are aware UTC; prices, sizes and fractions are ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

from billing.metering import GroupValues


class ProductType(StrEnum):
    USAGE = "usage"
    SUBSCRIPTION = "subscription"
    FIXED = "fixed"
    COMPOSITE = "composite"


class ConversionOperation(StrEnum):
    MULTIPLY = "multiply"
    DIVIDE = "divide"


class RoundingMethod(StrEnum):
    ROUND_UP = "round_up"
    ROUND_DOWN = "round_down"
    ROUND_HALF_UP = "round_half_up"


@dataclass(frozen=True)
class QuantityConversion:
    conversion_factor: Decimal
    operation: ConversionOperation


@dataclass(frozen=True)
class QuantityRounding:
    decimal_places: int
    rounding_method: RoundingMethod


@dataclass(frozen=True)
class Product:
    """A product. ``usage`` products name their metric; ``composite`` products name the
    products whose spend they take a percentage of."""

    id: str
    name: str
    type: ProductType
    billable_metric_id: str | None = None
    pricing_group_key: tuple[str, ...] = ()
    presentation_group_key: tuple[str, ...] = ()
    quantity_conversion: QuantityConversion | None = None
    quantity_rounding: QuantityRounding | None = None
    composite_product_ids: tuple[str, ...] = ()


class RateType(StrEnum):
    FLAT = "flat"
    TIERED = "tiered"
    PACKAGE = "package"
    PERCENTAGE = "percentage"
    SUBSCRIPTION = "subscription"


class TierMode(StrEnum):
    GRADUATED = "graduated"
    VOLUME = "volume"


@dataclass(frozen=True)
class Tier:
    """``size`` units at ``price`` each; the last tier has no size (unbounded)."""

    price: Decimal
    size: Decimal | None = None


@dataclass(frozen=True)
class PriceSpec:
    """How a quantity becomes an amount. Fields used by type: ``flat``/``subscription``:
    ``price`` per unit; ``tiered``: ``tiers`` and ``tier_mode``; ``package``: ``price`` per
    started ``package_size``; ``percentage``: ``fraction`` (0 to 1) of a base spend."""

    rate_type: RateType
    price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    tier_mode: TierMode = TierMode.GRADUATED
    package_size: Decimal | None = None
    fraction: Decimal | None = None


@dataclass(frozen=True)
class Rate:
    """One time-versioned rate of a product on a rate card, for exactly the product's
    pricing group values, in force over ``[starting_at, ending_before)``."""

    product_id: str
    starting_at: datetime
    spec: PriceSpec
    ending_before: datetime | None = None
    entitled: bool = True
    pricing_group_values: GroupValues = ()
    id: str = ""

    def in_force_at(self, moment: datetime) -> bool:
        """True when ``starting_at <= moment`` and (no end or ``moment < ending_before``)."""
        return self.starting_at <= moment and (
            self.ending_before is None or moment < self.ending_before
        )


@dataclass(frozen=True)
class RateCard:
    id: str
    name: str
    currency: str = "USD"
    rates: tuple[Rate, ...] = ()

    @cached_property
    def rates_by_product(self) -> dict[str, tuple[Rate, ...]]:
        """The card's rates per product id, in card order (computed once per card)."""
        found: dict[str, list[Rate]] = {}
        for rate in self.rates:
            found.setdefault(rate.product_id, []).append(rate)
        return {product_id: tuple(rates) for product_id, rates in found.items()}
