from __future__ import annotations

import pytest

from billing.catalog import (
    ConversionOperation,
    PriceSpec,
    Product,
    ProductType,
    QuantityConversion,
    QuantityRounding,
    RateType,
    RoundingMethod,
    TierMode,
)
from billing.contracts import (
    Commit,
    CommitType,
    Credit,
    Override,
    OverrideType,
    QuantityChange,
    RecurringCredit,
    Subscription,
)
from billing.errors import ValidationError
from billing.periods import BillingFrequency
from billing.validation import (
    validate_contract,
    validate_price_spec,
    validate_product,
    validate_rate,
)
from tests.unit.billing.builders import (
    APRIL,
    MARCH,
    METRIC,
    D,
    contract,
    flat,
    rate,
    tiered,
    usage_product,
)

METRICS = {"m": METRIC}


def field_of(call: object, *args: object) -> str:
    with pytest.raises(ValidationError) as error:
        call(*args)  # type: ignore[operator]
    return error.value.field


def test_valid_inputs_pass() -> None:
    validate_product(usage_product(pricing_group_key=("user",)), METRICS)
    validate_product(Product("f", "Fee", ProductType.FIXED), METRICS)
    validate_price_spec(tiered(TierMode.VOLUME, ("1", "10"), ("0.5", None)))
    validate_rate(rate("p", flat("1")), usage_product(), "USD")
    validate_contract(contract(credits=(Credit("c", "C", D(1), MARCH, APRIL),)))


@pytest.mark.parametrize(
    ("product", "field"),
    [
        (Product("p", " ", ProductType.USAGE), "name"),
        (Product("p", "P", ProductType.USAGE, billable_metric_id="x"), "billable_metric_id"),
        (usage_product(pricing_group_key=("model",)), "pricing_group_key"),
        (Product("f", "F", ProductType.FIXED, pricing_group_key=("a",)), "pricing_group_key"),
        (Product("c", "C", ProductType.COMPOSITE), "composite_product_ids"),
        (
            usage_product(quantity_conversion=QuantityConversion(D(0), ConversionOperation.DIVIDE)),
            "quantity_conversion.conversion_factor",
        ),
        (
            usage_product(quantity_rounding=QuantityRounding(-1, RoundingMethod.ROUND_UP)),
            "quantity_rounding.decimal_places",
        ),
    ],
)
def test_products(product: Product, field: str) -> None:
    assert field_of(validate_product, product, METRICS) == field


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (PriceSpec(RateType.FLAT, price=D(-1)), "price"),
        (PriceSpec(RateType.PACKAGE, price=D(1), package_size=D(0)), "package_size"),
        (PriceSpec(RateType.PERCENTAGE, fraction=D("1.5")), "fraction"),
        (PriceSpec(RateType.TIERED), "tiers"),
        (tiered(TierMode.GRADUATED, ("1", None), ("2", None)), "tiers[0].size"),
        (tiered(TierMode.GRADUATED, ("1", "10")), "tiers[0].size"),
        (tiered(TierMode.GRADUATED, ("1", "-1"), ("1", None)), "tiers[0].size"),
        (tiered(TierMode.GRADUATED, ("-1", None)), "tiers[0].price"),
    ],
)
def test_price_specs(spec: PriceSpec, field: str) -> None:
    assert field_of(validate_price_spec, spec) == field


def test_rates() -> None:
    assert (
        field_of(
            validate_rate, rate("p", flat("1")), usage_product(pricing_group_key=("user",)), "USD"
        )
        == "pricing_group_values"
    )
    assert (
        field_of(
            validate_rate,
            rate("p", flat("1"), ending_before=rate("p", flat("1")).starting_at),
            usage_product(),
            "USD",
        )
        == "ending_before"
    )
    assert field_of(validate_rate, rate("p", flat("1")), usage_product(), "ZZZ") == "currency"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ending_before": MARCH}, "ending_before"),
        (
            {"overrides": (Override("p", MARCH, OverrideType.MULTIPLIER),)},
            "overrides[0].multiplier",
        ),
        (
            {"overrides": (Override("p", MARCH, OverrideType.OVERWRITE),)},
            "overrides[0].overwrite_rate",
        ),
        (
            {
                "overrides": (
                    Override(
                        "p", MARCH, OverrideType.OVERWRITE, overwrite_rate=PriceSpec(RateType.FLAT)
                    ),
                )
            },
            "overrides[0].overwrite_rate.price",
        ),
        ({"credits": (Credit("c", "C", D(0), MARCH, APRIL),)}, "credits[0].amount"),
        (
            {"commits": (Commit("c", "C", "p", CommitType.PREPAID, D(1), APRIL, MARCH),)},
            "commits[0].ending_before",
        ),
        (
            {
                "recurring_credits": (
                    RecurringCredit("r", "R", D(0), BillingFrequency.MONTHLY, MARCH),
                )
            },
            "recurring_credits[0].amount",
        ),
        ({"subscriptions": (Subscription("s", ()),)}, "subscriptions[0].quantity_schedule"),
        (
            {"subscriptions": (Subscription("s", (QuantityChange(MARCH, D(-1)),)),)},
            "subscriptions[0].quantity_schedule[0].quantity",
        ),
    ],
)
def test_contracts(kwargs: dict[str, object], field: str) -> None:
    assert field_of(validate_contract, contract(**kwargs)) == field
