"""Small factories for the billing core's values, so each test states only what matters."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from billing.catalog import (
    PriceSpec,
    Product,
    ProductType,
    Rate,
    RateCard,
    RateType,
    Tier,
    TierMode,
)
from billing.contracts import Contract
from billing.invoicing import BillingContext
from billing.metering import (
    AggregationType,
    GroupValues,
    MetricDefinition,
    PropertyFilter,
    RollupPartial,
)

D = Decimal


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


MARCH = at(2026, 3, 1)
APRIL = at(2026, 4, 1)

METRIC = MetricDefinition(
    id="m",
    name="Units",
    aggregation_type=AggregationType.SUM,
    property_filters=(PropertyFilter("units", exists=True), PropertyFilter("user", exists=True)),
    aggregation_key="units",
    group_keys=(("user",),),
)


def usage_product(product_id: str = "p", **kwargs: object) -> Product:
    return Product(
        product_id, product_id.upper(), ProductType.USAGE, billable_metric_id="m", **kwargs
    )  # type: ignore[arg-type]


def flat(price: str) -> PriceSpec:
    return PriceSpec(RateType.FLAT, price=D(price))


def tiered(mode: TierMode, *tiers: tuple[str, str | None]) -> PriceSpec:
    return PriceSpec(
        RateType.TIERED,
        tiers=tuple(Tier(D(price), None if size is None else D(size)) for price, size in tiers),
        tier_mode=mode,
    )


def rate(
    product_id: str, spec: PriceSpec, start: datetime = at(2026, 1, 1), **kwargs: object
) -> Rate:
    return Rate(product_id, start, spec, **kwargs)  # type: ignore[arg-type]


def card(*rates: Rate, currency: str = "USD") -> RateCard:
    return RateCard("rc", "Card", currency, rates)


def contract(**kwargs: object) -> Contract:
    return Contract("k", "c", "rc", kwargs.pop("starting_at", MARCH), **kwargs)  # type: ignore[arg-type]


def context(contract_: Contract, rate_card: RateCard, *products: Product) -> BillingContext:
    return BillingContext(contract_, rate_card, {p.id: p for p in products}, {"m": METRIC})


def partial(total: str, user: str = "u1") -> tuple[GroupValues, RollupPartial]:
    return ((("user", user),), RollupPartial(count=1, sum=D(total)))
