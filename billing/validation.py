"""Validation of catalog and contract inputs; every error names the offending field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from billing.catalog import PriceSpec, Product, ProductType, Rate, RateType
from billing.contracts import Commit, Contract, Credit, OverrideType
from billing.errors import ValidationError
from billing.metering import MetricDefinition
from billing.money import minor_units


def validate_product(product: Product, metrics: Mapping[str, MetricDefinition]) -> None:
    """SPEC §3: usage products name a known metric; pricing + presentation group keys are
    together a subset of one compound group key of it; conversion factor > 0; rounding
    places >= 0; composite products name at least one product."""
    if not product.name.strip():
        raise ValidationError("name", "must not be empty")
    if product.type is ProductType.USAGE:
        metric = metrics.get(product.billable_metric_id or "")
        if metric is None:
            raise ValidationError("billable_metric_id", "must name an existing billable metric")
        keys = set(product.pricing_group_key) | set(product.presentation_group_key)
        if keys and not any(keys <= set(compound) for compound in metric.group_keys):
            raise ValidationError(
                "pricing_group_key",
                "with presentation_group_key must fit one group key of the metric",
            )
    elif product.pricing_group_key or product.presentation_group_key:
        raise ValidationError("pricing_group_key", "only usage products have group keys")
    if product.type is ProductType.COMPOSITE and not product.composite_product_ids:
        raise ValidationError("composite_product_ids", "must name at least one product")
    conversion = product.quantity_conversion
    if conversion is not None and conversion.conversion_factor <= 0:
        raise ValidationError("quantity_conversion.conversion_factor", "must be positive")
    if product.quantity_rounding is not None and product.quantity_rounding.decimal_places < 0:
        raise ValidationError("quantity_rounding.decimal_places", "must be 0 or more")


def validate_price_spec(spec: PriceSpec, field: str = "") -> None:
    """The fields each rate type needs: a price >= 0 (flat, package, subscription), a
    package size > 0, a fraction in [0, 1], tiers with positive sizes and only the last one
    unbounded."""
    prefix = f"{field}." if field else ""
    priced = spec.rate_type in (RateType.FLAT, RateType.PACKAGE, RateType.SUBSCRIPTION)
    if priced and (spec.price is None or spec.price < 0):
        raise ValidationError(f"{prefix}price", "is required and must be 0 or more")
    if spec.rate_type is RateType.PACKAGE and (spec.package_size is None or spec.package_size <= 0):
        raise ValidationError(f"{prefix}package_size", "must be positive")
    if spec.rate_type is RateType.PERCENTAGE and (
        spec.fraction is None or not 0 <= spec.fraction <= 1
    ):
        raise ValidationError(f"{prefix}fraction", "must be between 0 and 1")
    if spec.rate_type is RateType.TIERED:
        if not spec.tiers:
            raise ValidationError(f"{prefix}tiers", "a tiered rate needs at least one tier")
        for index, tier in enumerate(spec.tiers):
            last = index == len(spec.tiers) - 1
            if (tier.size is None) != last or (tier.size is not None and tier.size <= 0):
                raise ValidationError(
                    f"{prefix}tiers[{index}].size",
                    "every tier but the last needs a positive size; the last has none",
                )
            if tier.price < 0:
                raise ValidationError(f"{prefix}tiers[{index}].price", "must be 0 or more")


def validate_rate(rate: Rate, product: Product, currency: str) -> None:
    """SPEC §4: a valid price spec for the rate type, pricing group values covering exactly
    the product's pricing group key, an end after the start, a supported currency."""
    minor_units(currency)
    validate_price_spec(rate.spec)
    if {key for key, _ in rate.pricing_group_values} != set(product.pricing_group_key):
        raise ValidationError(
            "pricing_group_values", "must cover exactly the product's pricing_group_key"
        )
    if rate.ending_before is not None and rate.ending_before <= rate.starting_at:
        raise ValidationError("ending_before", "must be after starting_at")


def _validate_grant(grant: Credit | Commit, field: str) -> None:
    if grant.amount <= 0:
        raise ValidationError(f"{field}.amount", "must be positive")
    if grant.ending_before <= grant.starting_at:
        raise ValidationError(f"{field}.ending_before", "must be after starting_at")


def validate_contract(contract: Contract) -> None:
    """Dates in order, positive amounts, valid overrides and quantity schedules."""
    if contract.ending_before is not None and contract.ending_before <= contract.starting_at:
        raise ValidationError("ending_before", "must be after starting_at")
    for i, o in enumerate(contract.overrides):
        if o.type is OverrideType.MULTIPLIER and (o.multiplier is None or o.multiplier < 0):
            raise ValidationError(f"overrides[{i}].multiplier", "is required and must be 0 or more")
        if o.type is OverrideType.OVERWRITE:
            if o.overwrite_rate is None:
                raise ValidationError(f"overrides[{i}].overwrite_rate", "is required")
            validate_price_spec(o.overwrite_rate, f"overrides[{i}].overwrite_rate")
    for i, credit in enumerate(contract.credits):
        _validate_grant(credit, f"credits[{i}]")
    for i, commit in enumerate(contract.commits):
        _validate_grant(commit, f"commits[{i}]")
    for i, r in enumerate(contract.recurring_credits):
        if r.amount <= 0:
            raise ValidationError(f"recurring_credits[{i}].amount", "must be positive")
    for i, s in enumerate(contract.subscriptions):
        if not s.quantity_schedule:
            raise ValidationError(f"subscriptions[{i}].quantity_schedule", "must not be empty")
        for j, change in enumerate(s.quantity_schedule):
            if change.quantity < 0:
                raise ValidationError(
                    f"subscriptions[{i}].quantity_schedule[{j}].quantity", "must be 0 or more"
                )


COLLECTION_METHODS = ("charge_automatically", "send_invoice")


def validate_customer(
    name: str | None, ingest_aliases: Sequence[str], stripe_collection_method: str | None
) -> None:
    """A non-empty name (≤ 200 chars, when given), aliases of 1–128 characters, and a known
    Stripe collection method."""
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise ValidationError("name", "must be 1 to 200 characters")
    for index, alias in enumerate(ingest_aliases):
        if not 1 <= len(alias) <= 128:
            raise ValidationError(f"ingest_aliases[{index}]", "must be 1 to 128 characters")
    if stripe_collection_method is not None and stripe_collection_method not in COLLECTION_METHODS:
        raise ValidationError(
            "stripe_collection_method", f"must be one of {', '.join(COLLECTION_METHODS)}"
        )


def validate_stripe_settings(secret_key: str, webhook_secret: str | None) -> None:
    """A Stripe secret (``sk_…``) or restricted (``rk_…``) key and, when given, a webhook
    signing secret (``whsec_…``); each at most 255 characters, without spaces."""
    for field, value, prefixes in (
        ("secret_key", secret_key, ("sk_", "rk_")),
        ("webhook_signing_secret", webhook_secret, ("whsec_",)),
    ):
        if value is None:
            continue
        if not value.startswith(prefixes) or len(value) > 255 or any(c.isspace() for c in value):
            raise ValidationError(
                field, f"must be a Stripe key starting with {' or '.join(prefixes)}"
            )
