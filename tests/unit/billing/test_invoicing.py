from __future__ import annotations

from decimal import Decimal

import pytest

from billing.catalog import PriceSpec, Product, ProductType, RateType, TierMode
from billing.contracts import (
    Commit,
    CommitType,
    Credit,
    QuantityChange,
    ScheduledCharge,
    Subscription,
)
from billing.drawdown import LedgerEntryType
from billing.errors import ConflictError, NotFoundError
from billing.invoices import InvoiceStatus, LineType
from billing.invoicing import assemble, assemble_open, finalize
from billing.metering import UsageEvent
from billing.periods import Period
from billing.preview import PreviewMode, diff_invoices, preview_costs
from billing.rates import UnratedReason
from tests.unit.billing.builders import (
    APRIL,
    MARCH,
    D,
    at,
    card,
    context,
    contract,
    flat,
    partial,
    rate,
    tiered,
    usage_product,
)

PERIOD = Period(MARCH, APRIL)
SEATS = Product("seats", "Seats", ProductType.SUBSCRIPTION)
SEAT_RATE = rate("seats", PriceSpec(RateType.SUBSCRIPTION, price=D(30)))


def sub_lines(subscription: Subscription, **contract_kwargs: object) -> list[tuple[str, str]]:
    ctx = context(
        contract(subscriptions=(subscription,), **contract_kwargs), card(SEAT_RATE), SEATS
    )
    invoice = assemble(ctx, PERIOD, {}, {})
    return [(str(line.quantity), str(line.amount)) for line in invoice.lines]


def test_subscription_is_charged_in_advance_and_increases_are_prorated() -> None:
    sub = Subscription(
        "seats", (QuantityChange(MARCH, D(2)), QuantityChange(at(2026, 3, 16, 12), D(5)))
    )
    # 3 added seats for 15.5 of 31 days: 3 * 30 * 0.5 = 45.00
    assert sub_lines(sub) == [("2", "60.00"), ("3", "45.00")]


def test_subscription_decreases_take_effect_next_period() -> None:
    sub = Subscription(
        "seats",
        (
            QuantityChange(MARCH, D(4)),
            QuantityChange(at(2026, 3, 10), D(1)),
            QuantityChange(at(2026, 3, 20), D(5)),
        ),
    )
    march = sub_lines(sub)
    assert march[0] == ("4", "120.00") and march[1][0] == "1"  # only the seat above 4 is added
    ctx = context(contract(subscriptions=(sub,)), card(SEAT_RATE), SEATS)
    april = assemble(ctx, Period(APRIL, at(2026, 5, 1)), {}, {})
    assert [line.amount for line in april.lines] == [D("150.00")]


def test_without_proration_an_increase_is_charged_at_the_full_price() -> None:
    sub = Subscription(
        "seats",
        (QuantityChange(MARCH, D(1)), QuantityChange(at(2026, 3, 20), D(2))),
        proration=False,
    )
    assert sub_lines(sub) == [("1", "30.00"), ("1", "30.00")]


def test_a_period_cut_by_the_contract_start_is_prorated() -> None:
    sub = Subscription("seats", (QuantityChange(at(2026, 3, 16, 12), D(1)),))
    ctx = context(
        contract(starting_at=at(2026, 3, 16, 12), subscriptions=(sub,)), card(SEAT_RATE), SEATS
    )
    invoice = assemble(ctx, Period(at(2026, 3, 16, 12), APRIL), {}, {})
    assert [line.amount for line in invoice.lines] == [D("15.00")]


def test_unpriced_subscription_is_listed_as_unrated() -> None:
    sub = Subscription("seats", (QuantityChange(MARCH, D(3)),))
    invoice = assemble(context(contract(subscriptions=(sub,)), card(), SEATS), PERIOD, {}, {})
    assert invoice.lines == ()
    assert [(u.quantity, u.reason) for u in invoice.unrated_usage] == [
        (D(3), UnratedReason.NOT_ON_RATE_CARD)
    ]


def test_scheduled_charges_and_commit_purchases_land_in_their_period() -> None:
    k = contract(
        scheduled_charges=(
            ScheduledCharge("s1", "fee", at(2026, 3, 10), D("250"), "Onboarding"),
            ScheduledCharge("s2", "fee", APRIL, D("99"), "Later"),
        ),
        commits=(
            Commit(
                "c1",
                "Q2",
                "pc",
                CommitType.PREPAID,
                D(100),
                MARCH,
                at(2026, 6, 1),
                invoice_at=at(2026, 3, 5),
            ),
        ),
    )
    invoice = assemble(context(k, card()), PERIOD, {}, {})
    assert [(line.type, line.name, line.amount) for line in invoice.lines] == [
        (LineType.SCHEDULED, "Onboarding", D("250.00")),
        (LineType.COMMIT_PURCHASE, "Q2", D("100.00")),
    ]
    assert (invoice.subtotal, invoice.total) == (D("350.00"), D("350.00"))


def test_postpaid_commit_trues_up_the_shortfall_at_its_end() -> None:
    commit = Commit("pp", "Minimum", "pc", CommitType.POSTPAID, D(100), MARCH, APRIL)
    ctx = context(contract(commits=(commit,)), card(rate("p", flat("1"))), usage_product())
    invoice = assemble(ctx, PERIOD, {"m": [partial("30")]}, {})
    assert [(line.type, line.amount) for line in invoice.lines] == [
        (LineType.USAGE, D("30.00")),
        (LineType.COMMIT_TRUEUP, D("70.00")),
    ]
    assert invoice.total == D("100.00")
    final, entries = finalize(invoice, "inv", APRIL)
    assert [(e.type, e.amount) for e in entries] == [
        (LedgerEntryType.AUTOMATED_INVOICE_DEDUCTION, D(-30)),
        (LedgerEntryType.EXPIRATION, D("-70.00")),
    ]
    assert final.status is InvoiceStatus.FINALIZED
    with pytest.raises(ConflictError):
        finalize(final, "inv", APRIL)
    met = assemble(ctx, PERIOD, {"m": [partial("130")]}, {})
    assert LineType.COMMIT_TRUEUP not in [line.type for line in met.lines]


def test_composite_takes_a_fraction_of_its_products_spend_before_credits() -> None:
    support = Product("sup", "Support", ProductType.COMPOSITE, composite_product_ids=("p",))
    rc = card(rate("p", flat("1")), rate("sup", PriceSpec(RateType.PERCENTAGE, fraction=D("0.1"))))
    k = contract(credits=(Credit("cr", "Credit", D(50), MARCH, APRIL),))
    invoice = assemble(
        context(k, rc, usage_product(), support), PERIOD, {"m": [partial("33.35")]}, {}
    )
    assert [(line.type, line.amount) for line in invoice.lines] == [
        (LineType.USAGE, D("33.35")),
        (LineType.COMPOSITE, D("3.34")),
        (LineType.CREDIT_APPLIED, D("-33.35")),
    ]
    assert (invoice.subtotal, invoice.total) == (D("36.69"), D("3.34"))


def test_composite_without_rate_in_force_is_unrated_and_absent_one_is_ignored() -> None:
    support = Product("sup", "Support", ProductType.COMPOSITE, composite_product_ids=("p",))
    late = rate("sup", PriceSpec(RateType.PERCENTAGE, fraction=D("0.1")), start=APRIL)
    usage = {"m": [partial("10")]}
    unrated = assemble(
        context(contract(), card(rate("p", flat("1")), late), usage_product(), support),
        PERIOD,
        usage,
        {},
    )
    assert [(u.product_id, u.quantity, u.reason) for u in unrated.unrated_usage] == [
        ("sup", D("10.00"), UnratedReason.NO_RATE_IN_FORCE)
    ]
    ignored = assemble(
        context(contract(), card(rate("p", flat("1"))), usage_product(), support), PERIOD, usage, {}
    )
    assert ignored.unrated_usage == ()


def test_presentation_lines_share_the_pricing_groups_tiers() -> None:
    product = usage_product(presentation_group_key=("user",))
    spec = tiered(TierMode.GRADUATED, ("1", "10"), ("0.5", None))
    invoice = assemble(
        context(contract(), card(rate("p", spec)), product),
        PERIOD,
        {"m": [partial("8", "a"), partial("6", "b")]},
        {},
    )
    assert [(line.group, line.amount) for line in invoice.lines] == [
        ((("user", "a"),), D("8.00")),
        ((("user", "b"),), D("4.00")),
    ]


def test_unrated_usage_lists_each_group_with_its_billed_quantity() -> None:
    product = usage_product(pricing_group_key=("user",))
    rc = card(rate("p", flat("1"), pricing_group_values=(("user", "a"),)))
    invoice = assemble(
        context(contract(), rc, product), PERIOD, {"m": [partial("8", "a"), partial("6", "b")]}, {}
    )
    assert [line.amount for line in invoice.lines] == [D("8.00")]
    assert [(u.group, u.quantity, u.reason) for u in invoice.unrated_usage] == [
        ((("user", "b"),), D(6), UnratedReason.NO_RATE_FOR_GROUP_VALUES)
    ]


def test_unknown_references_are_not_found_errors() -> None:
    k = contract(subscriptions=(Subscription("nope", (QuantityChange(MARCH, D(1)),)),))
    with pytest.raises(NotFoundError):
        assemble(context(k, card()), PERIOD, {}, {})
    orphan = Product("p", "P", ProductType.USAGE, billable_metric_id="missing")
    with pytest.raises(NotFoundError):
        assemble(context(contract(), card(), orphan), PERIOD, {"missing": [partial("1")]}, {})


def test_open_drafts_never_spend_a_balance_twice() -> None:
    k = contract(credits=(Credit("cr", "Credit", D(10), MARCH, at(2026, 6, 1)),))
    ctx = context(k, card(rate("p", flat("1"))), usage_product())
    april = Period(APRIL, at(2026, 5, 1))
    march_inv, april_inv = assemble_open(
        ctx, [(april, {"m": [partial("6")]}), (PERIOD, {"m": [partial("7")]})], {}
    )
    assert (march_inv.total, april_inv.total) == (D("0.00"), D("3.00"))
    assert assemble_open(ctx, [], {}) == ()


EVENT = UsageEvent("t1", "c", "e", at(2026, 3, 5), {"units": "5", "user": "u1"})


@pytest.mark.parametrize(
    ("mode", "total"), [(PreviewMode.MERGE, "15.00"), (PreviewMode.REPLACE, "5.00")]
)
def test_preview_merges_or_replaces_and_reports_the_difference(
    mode: PreviewMode, total: str
) -> None:
    ctx = context(contract(), card(rate("p", flat("1"))), usage_product())
    outside = UsageEvent("t2", "c", "e", APRIL, {"units": "5", "user": "u1"})
    result = preview_costs(ctx, PERIOD, {"m": [partial("10")]}, [EVENT, outside], mode, {})
    assert result.current.total == D("10.00")
    assert result.preview.total == D(total)
    assert result.diff.total_delta == D(total) - D(10)
    (delta,) = result.diff.lines
    assert delta.amount_delta == result.diff.total_delta


def test_diff_lists_added_and_removed_lines_only() -> None:
    product = usage_product(presentation_group_key=("user",))
    ctx = context(contract(), card(rate("p", flat("1"))), product)
    before = assemble(ctx, PERIOD, {"m": [partial("1", "a"), partial("2", "b")]}, {})
    after = assemble(ctx, PERIOD, {"m": [partial("1", "a"), partial("3", "c")]}, {})
    diff = diff_invoices(before, after)
    assert [(d.group, d.amount_before, d.amount_after) for d in diff.lines] == [
        ((("user", "c"),), Decimal(0), D("3.00")),
        ((("user", "b"),), D("2.00"), Decimal(0)),
    ]
