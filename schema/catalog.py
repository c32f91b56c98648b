"""Products, rate cards and rates (SPEC §3, §4)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from schema.enums import ConversionOperation, ProductType, RateType, RoundingMethod, TierMode


@strawberry.type
class QuantityConversion:
    conversion_factor: Decimal
    operation: ConversionOperation


@strawberry.type
class QuantityRounding:
    decimal_places: int
    rounding_method: RoundingMethod


@strawberry.type(description="Something sold: usage (of a metric), subscription, fixed, composite.")
class Product:
    id: strawberry.ID
    name: str
    type: ProductType
    billable_metric_id: strawberry.ID | None
    pricing_group_key: list[str]
    presentation_group_key: list[str]
    quantity_conversion: QuantityConversion | None
    quantity_rounding: QuantityRounding | None
    composite_product_ids: list[strawberry.ID]
    archived_at: datetime | None


@strawberry.type
class Tier:
    size: Decimal | None
    price: Decimal


@strawberry.type(description="A time-versioned price of a product for its pricing group values.")
class Rate:
    id: strawberry.ID
    product_id: strawberry.ID
    starting_at: datetime
    ending_before: datetime | None
    entitled: bool
    pricing_group_values: JSON
    rate_type: RateType
    price: Decimal | None
    tiers: list[Tier]
    tier_mode: TierMode
    package_size: Decimal | None
    fraction: Decimal | None


@strawberry.type
class RateCard:
    id: strawberry.ID
    name: str
    currency: str
    rates: list[Rate]


@strawberry.input
class QuantityConversionInput:
    conversion_factor: Decimal
    operation: ConversionOperation


@strawberry.input
class QuantityRoundingInput:
    decimal_places: int
    rounding_method: RoundingMethod


@strawberry.input
class CreateProductInput:
    name: str
    type: ProductType
    billable_metric_id: strawberry.ID | None = None
    pricing_group_key: list[str] = strawberry.field(default_factory=list)
    presentation_group_key: list[str] = strawberry.field(default_factory=list)
    quantity_conversion: QuantityConversionInput | None = None
    quantity_rounding: QuantityRoundingInput | None = None
    composite_product_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    uniqueness_key: str | None = None


@strawberry.input(description="Fields to change; a product's type and metric never change.")
class UpdateProductInput:
    id: strawberry.ID
    name: str | None = None


@strawberry.input
class TierInput:
    price: Decimal
    size: Decimal | None = None


@strawberry.input
class RateInput:
    product_id: strawberry.ID
    starting_at: datetime
    rate_type: RateType
    ending_before: datetime | None = None
    entitled: bool = True
    pricing_group_values: JSON | None = None
    price: Decimal | None = None
    tiers: list[TierInput] = strawberry.field(default_factory=list)
    tier_mode: TierMode = TierMode.GRADUATED
    package_size: Decimal | None = None
    fraction: Decimal | None = None


@strawberry.input
class CreateRateCardInput:
    name: str
    currency: str = "USD"
    rates: list[RateInput] = strawberry.field(default_factory=list)
    uniqueness_key: str | None = None


@strawberry.input
class AddRatesInput:
    rate_card_id: strawberry.ID
    rates: list[RateInput]
