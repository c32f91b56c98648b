from __future__ import annotations

import pytest

from billing.catalog import (
    ConversionOperation,
    PriceSpec,
    QuantityConversion,
    QuantityRounding,
    RateType,
    RoundingMethod,
    TierMode,
)
from billing.contracts import Override, OverrideType
from billing.errors import ValidationError
from billing.pricing import TierAmount, convert_quantity, price_units
from billing.rates import UnratedReason, apply_override, effective_spec, find_rate, select_override
from tests.unit.billing.builders import APRIL, MARCH, D, at, card, flat, rate, tiered, usage_product

TIERS = (("0.01", "10000"), ("0.008", "40000"), ("0.005", None))


@pytest.mark.parametrize(
    ("method", "raw", "expected"),
    [
        (RoundingMethod.ROUND_UP, "190", "4"),
        (RoundingMethod.ROUND_DOWN, "190", "3"),
        (RoundingMethod.ROUND_HALF_UP, "150", "3"),
        (RoundingMethod.ROUND_HALF_UP, "149", "2"),
        (RoundingMethod.ROUND_UP, "-190", "-3"),
    ],
)
def test_divide_then_round_per_method(method: RoundingMethod, raw: str, expected: str) -> None:
    product = usage_product(
        quantity_conversion=QuantityConversion(D(60), ConversionOperation.DIVIDE),
        quantity_rounding=QuantityRounding(0, method),
    )
    assert convert_quantity(product, D(raw)) == D(expected)


def test_multiply_keeps_exact_decimals_and_rounds_to_places() -> None:
    product = usage_product(
        quantity_conversion=QuantityConversion(D("0.001"), ConversionOperation.MULTIPLY),
        quantity_rounding=QuantityRounding(2, RoundingMethod.ROUND_HALF_UP),
    )
    assert str(convert_quantity(product, D("1235"))) == "1.24"
    assert convert_quantity(usage_product(), D("0.1")) == D("0.1")


def test_flat_rounds_the_line_half_up() -> None:
    priced = price_units(flat("0.001"), D(61), "USD")
    assert (priced.amount, priced.unit_price) == (D("0.06"), D("0.001"))
    assert str(price_units(flat("0.005"), D(1), "USD").amount) == "0.01"


def test_graduated_prices_each_unit_in_its_tier_and_rounds_per_tier() -> None:
    priced = price_units(tiered(TierMode.GRADUATED, *TIERS), D(55000), "USD")
    assert priced.amount == D("445.00")
    assert priced.tiers == (
        TierAmount(D(0), D(10000), D("0.01"), D("100.00")),
        TierAmount(D(10000), D(40000), D("0.008"), D("320.00")),
        TierAmount(D(50000), D(5000), D("0.005"), D("25.00")),
    )
    assert priced.unit_price is None
    rounding = price_units(tiered(TierMode.GRADUATED, ("0.015", "1"), ("0.015", None)), D(2), "USD")
    assert rounding.amount == D("0.04")  # 0.02 + 0.02: each tier rounded, then summed
    one_tier = price_units(tiered(TierMode.GRADUATED, *TIERS), D(10000), "USD")
    assert (one_tier.amount, one_tier.unit_price) == (D("100.00"), D("0.01"))
    assert price_units(tiered(TierMode.GRADUATED, *TIERS), D(0), "USD").tiers == ()


def test_graduated_negative_quantity_is_credited_at_the_first_tier() -> None:
    priced = price_units(tiered(TierMode.GRADUATED, *TIERS), D(-100), "USD")
    assert priced.amount == D("-1.00")


def test_volume_prices_every_unit_at_the_tier_the_total_reaches() -> None:
    spec = tiered(TierMode.VOLUME, *TIERS)
    assert price_units(spec, D(55000), "USD").amount == D("275.00")
    at_boundary = price_units(spec, D(10000), "USD")
    assert (at_boundary.amount, at_boundary.unit_price) == (D("100.00"), D("0.01"))
    assert price_units(spec, D(10001), "USD").unit_price == D("0.008")
    capped = tiered(TierMode.VOLUME, ("1", "10"), ("0.5", "10"))
    assert price_units(capped, D(30), "USD").unit_price == D("0.5")


def test_slices_of_a_pricing_group_share_its_tiers() -> None:
    spec = tiered(TierMode.GRADUATED, *TIERS)
    first = price_units(spec, D(8000), "USD", start=D(0), group_total=D(12000))
    second = price_units(spec, D(4000), "USD", start=D(8000), group_total=D(12000))
    assert first.amount + second.amount == price_units(spec, D(12000), "USD").amount
    assert second.tiers[1] == TierAmount(D(10000), D(2000), D("0.008"), D("16.00"))
    volume = tiered(TierMode.VOLUME, *TIERS)
    assert price_units(volume, D(4000), "USD", start=D(8000), group_total=D(12000)).unit_price == D(
        "0.008"
    )


@pytest.mark.parametrize(
    ("units", "amount"),
    [("0", "0.00"), ("1", "2.00"), ("1000", "2.00"), ("1001", "4.00"), ("2500", "6.00")],
)
def test_package_charges_per_started_package(units: str, amount: str) -> None:
    spec = PriceSpec(RateType.PACKAGE, price=D("2.00"), package_size=D(1000))
    assert price_units(spec, D(units), "USD").amount == D(amount)


def test_package_slices_pay_for_packages_starting_inside_them() -> None:
    spec = PriceSpec(RateType.PACKAGE, price=D("2.00"), package_size=D(1000))
    parts = [
        price_units(spec, D(q), "USD", start=D(s)).amount
        for s, q in (("0", "1200"), ("1200", "1300"))
    ]
    assert parts == [D("4.00"), D("2.00")]


def test_percentage_and_subscription_rates() -> None:
    percentage = price_units(PriceSpec(RateType.PERCENTAGE, fraction=D("0.15")), D("33.33"), "USD")
    assert (percentage.amount, percentage.unit_price) == (D("5.00"), D("0.15"))
    subscription = price_units(PriceSpec(RateType.SUBSCRIPTION, price=D(49)), D(3), "USD")
    assert subscription.amount == D("147.00")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (PriceSpec(RateType.FLAT), "price"),
        (PriceSpec(RateType.PACKAGE, price=D(1)), "package_size"),
        (PriceSpec(RateType.PERCENTAGE), "fraction"),
        (PriceSpec(RateType.TIERED), "tiers"),
    ],
)
def test_incomplete_price_specs_name_the_missing_field(spec: PriceSpec, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        price_units(spec, D(1), "USD")
    assert error.value.field == field


def test_find_rate_reports_why_usage_is_unrated() -> None:
    gpt = (("model", "gpt-5"),)
    rc = card(
        rate("p", flat("1.50"), pricing_group_values=gpt, ending_before=APRIL),
        rate("p", flat("2.00"), start=APRIL, pricing_group_values=gpt),
        rate("q", flat("1"), entitled=False),
    )
    assert find_rate(rc, "p", gpt, MARCH).spec.price == D("1.50")  # type: ignore[union-attr]
    assert find_rate(rc, "p", gpt, APRIL).spec.price == D("2.00")  # type: ignore[union-attr]
    assert find_rate(rc, "p", (("model", "gpt5"),), MARCH) is UnratedReason.NO_RATE_FOR_GROUP_VALUES
    assert find_rate(rc, "p", gpt, at(2025, 1, 1)) is UnratedReason.NO_RATE_IN_FORCE
    assert find_rate(rc, "q", (), MARCH) is UnratedReason.NOT_ENTITLED
    assert find_rate(rc, "zzz", (), MARCH) is UnratedReason.NOT_ON_RATE_CARD


def _multiplier(value: str, priority: int | None = None, **kwargs: object) -> Override:
    return Override(
        "p",
        MARCH,
        OverrideType.MULTIPLIER,
        multiplier=D(value),
        priority=priority,
        id=value,
        **kwargs,
    )  # type: ignore[arg-type]


def test_among_multipliers_the_lowest_wins_without_priorities() -> None:
    assert select_override(
        [_multiplier("0.9"), _multiplier("0.8")], "p", (), MARCH
    ).multiplier == D("0.8")  # type: ignore[union-attr]


def test_priorities_beat_the_lowest_multiplier() -> None:
    chosen = select_override(
        [_multiplier("0.5"), _multiplier("0.9", 1), _multiplier("0.7", 2)], "p", (), MARCH
    )
    assert chosen is not None and chosen.multiplier == D("0.9")


def test_overwrites_beat_multipliers() -> None:
    overwrite = Override("p", MARCH, OverrideType.OVERWRITE, overwrite_rate=flat("5"), id="o")
    assert select_override([_multiplier("0.1", 0), overwrite], "p", (), MARCH) is overwrite


def test_overrides_apply_only_in_their_window_and_group() -> None:
    scoped = _multiplier("0.5", pricing_group_values=(("model", "a"),), ending_before=APRIL)
    assert select_override([scoped], "p", (("model", "a"),), MARCH) is scoped
    assert select_override([scoped], "p", (("model", "b"),), MARCH) is None
    assert select_override([scoped], "p", (("model", "a"),), APRIL) is None
    assert select_override([scoped], "p", (("model", "a"),), at(2026, 2, 1)) is None
    assert select_override([scoped], "other", (("model", "a"),), MARCH) is None


def test_multiplier_scales_every_price_and_overwrite_replaces() -> None:
    scaled = apply_override(tiered(TierMode.GRADUATED, *TIERS), _multiplier("0.5"))
    assert [t.price for t in scaled.tiers] == [D("0.005"), D("0.004"), D("0.0025")]
    rc = card(rate("p", flat("0.002")))
    spec = effective_spec(rc, [_multiplier("0.8")], "p", (), MARCH)
    assert isinstance(spec, PriceSpec) and spec.price == D("0.0016")
    overwrite = Override("p", MARCH, OverrideType.OVERWRITE, overwrite_rate=flat("5"))
    assert effective_spec(rc, [overwrite], "p", (), MARCH) == flat("5")
    assert effective_spec(rc, [overwrite], "x", (), MARCH) is UnratedReason.NOT_ON_RATE_CARD


def test_incomplete_overrides_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="overwrite_rate"):
        apply_override(flat("1"), Override("p", MARCH, OverrideType.OVERWRITE))
    with pytest.raises(ValidationError, match="multiplier"):
        apply_override(flat("1"), Override("p", MARCH, OverrideType.MULTIPLIER))
