"""Invariants of the billing core, over generated usage, tiers, credits and commits."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.catalog import PriceSpec, RateType, Tier, TierMode
from billing.contracts import Commit, CommitType, Credit
from billing.drawdown import BalanceKind, contract_segments
from billing.invoices import Invoice, LineType
from billing.invoicing import BillingContext, assemble
from billing.periods import Period
from billing.pricing import price_units
from tests.unit.billing.builders import (
    APRIL,
    MARCH,
    card,
    context,
    contract,
    flat,
    partial,
    rate,
    usage_product,
)

PERIOD = Period(MARCH, APRIL)
money = st.decimals(min_value=0, max_value=10_000, places=2)
quantities = st.decimals(min_value=0, max_value=1_000_000, places=3)
prices = st.decimals(min_value=0, max_value=100, places=4)
tiers = st.lists(
    st.tuples(prices, st.decimals(min_value="0.5", max_value=50_000, places=1)), max_size=4
).flatmap(
    lambda sized: prices.map(lambda last: (*tuple(Tier(p, s) for p, s in sized), Tier(last, None)))
)


@st.composite
def contexts(
    draw: st.DrawFn,
) -> tuple[BillingContext, dict[str, Decimal], list[tuple[str, Decimal]]]:
    credits = tuple(
        Credit(
            f"cr{i}",
            f"Credit {i}",
            amount,
            MARCH,
            APRIL,
            draw(st.none() | st.integers(0, 3)),
            draw(st.none() | st.just(frozenset({"p"}))),
        )
        for i, amount in enumerate(draw(st.lists(money.filter(lambda m: m > 0), max_size=3)))
    )
    commits = tuple(
        Commit(
            f"cm{i}", f"Commit {i}", "pc", draw(st.sampled_from(CommitType)), amount, MARCH, APRIL
        )
        for i, amount in enumerate(draw(st.lists(money.filter(lambda m: m > 0), max_size=2)))
    )
    spec = draw(
        st.sampled_from([TierMode.GRADUATED, TierMode.VOLUME]).flatmap(
            lambda mode: tiers.map(lambda t: PriceSpec(RateType.TIERED, tiers=t, tier_mode=mode))
        )
        | prices.map(lambda p: flat(str(p)))
    )
    k = contract(credits=credits, commits=commits)
    ctx = context(k, card(rate("p", spec)), usage_product(presentation_group_key=("user",)))
    segments = contract_segments(k, APRIL)
    available = {
        s.id: draw(st.decimals(min_value=0, max_value=s.amount, places=2)) for s in segments
    }
    usage = draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), quantities), max_size=6))
    return ctx, available, usage


def _assemble(
    ctx: BillingContext, available: dict[str, Decimal], usage: list[tuple[str, Decimal]]
) -> Invoice:
    return assemble(ctx, PERIOD, {"m": [partial(str(q), user) for user, q in usage]}, available)


@settings(max_examples=150, deadline=None)
@given(contexts())
def test_totals_balances_and_determinism(
    case: tuple[BillingContext, dict[str, Decimal], list[tuple[str, Decimal]]],
) -> None:
    ctx, available, usage = case
    invoice = _assemble(ctx, available, usage)
    amounts = [line.amount for line in invoice.lines]
    assert invoice.subtotal == sum((a for a in amounts if a > 0), Decimal(0))
    assert invoice.total == max(sum(amounts, Decimal(0)), Decimal(0)) >= 0
    for deduction in invoice.deductions:
        assert 0 < deduction.amount <= available[deduction.segment_id]
    charges = sum(
        (line.amount for line in invoice.lines if line.type is LineType.USAGE), Decimal(0)
    )
    applied = sum(
        (d.amount for d in invoice.deductions if d.kind is not BalanceKind.POSTPAID_COMMIT),
        Decimal(0),
    )
    postpaid = sum(
        (d.amount for d in invoice.deductions if d.kind is BalanceKind.POSTPAID_COMMIT), Decimal(0)
    )
    assert applied + postpaid <= charges
    assert invoice == _assemble(ctx, available, usage)


@settings(max_examples=200, deadline=None)
@given(tiers, quantities, st.lists(quantities, max_size=4))
def test_graduated_breakdown_adds_up_and_slices_never_lose_units(
    tier_list: tuple[Tier, ...], quantity: Decimal, slices: list[Decimal]
) -> None:
    spec = PriceSpec(RateType.TIERED, tiers=tier_list, tier_mode=TierMode.GRADUATED)
    priced = price_units(spec, quantity, "USD")
    assert sum((t.amount for t in priced.tiers), Decimal("0.00")) == priced.amount
    assert sum((t.quantity for t in priced.tiers), Decimal(0)) == quantity
    total = sum(slices, Decimal(0))
    start = Decimal(0)
    sliced = Decimal(0)
    for part in slices:
        sliced += sum(
            (t.quantity for t in price_units(spec, part, "USD", start, total).tiers), Decimal(0)
        )
        start += part
    assert sliced == total
