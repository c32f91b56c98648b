from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from billing.contracts import Commit, CommitType, Credit, RecurringCredit
from billing.drawdown import (
    BalanceKind,
    BalanceSegment,
    Charge,
    Deduction,
    LedgerEntryType,
    available_balances,
    balance_views,
    contract_segments,
    deduction_entries,
    draw_down,
    expiration_entry,
    ledger_balance,
    manual_adjustment,
    segment_start_entry,
    void_entries,
)
from billing.errors import ValidationError
from billing.periods import BillingAnchor, BillingFrequency, Period
from tests.unit.billing.builders import APRIL, MARCH, D, at, contract

PERIOD = Period(MARCH, APRIL)


def seg(
    segment_id: str,
    amount: str = "10",
    kind: BalanceKind = BalanceKind.CREDIT,
    priority: int | None = None,
    start: datetime = MARCH,
    end: datetime = at(2026, 6, 1),
    products: frozenset[str] | None = None,
) -> BalanceSegment:
    return BalanceSegment(
        segment_id, segment_id, segment_id, kind, D(amount), start, end, priority, products
    )


def order(*segments: BalanceSegment, charge: str = "5") -> list[str]:
    deductions = draw_down([Charge("p", D(charge))], segments, {}, PERIOD, "USD")
    return [d.segment_id for d in deductions]


def test_lowest_priority_first_and_unset_last() -> None:
    assert order(seg("none"), seg("two", priority=2), seg("one", priority=1), charge="25") == [
        "one",
        "two",
        "none",
    ]


def test_credits_before_prepaid_commits() -> None:
    assert order(seg("commit", kind=BalanceKind.PREPAID_COMMIT), seg("credit")) == ["credit"]


def test_earliest_ending_before_then_earliest_starting_at_then_id() -> None:
    assert order(seg("late", end=at(2026, 9, 1)), seg("early", end=at(2026, 5, 1))) == ["early"]
    assert order(seg("b", start=at(2026, 2, 1)), seg("a", start=MARCH)) == ["b"]
    assert order(seg("b"), seg("a")) == ["a"]


def test_only_applicable_products_and_overlapping_segments_draw() -> None:
    only_q = seg("q-only", products=frozenset({"q"}))
    expired = seg("expired", start=at(2026, 1, 1), end=MARCH)
    assert order(only_q, expired) == []
    assert order(seg("p-only", products=frozenset({"p"}))) == ["p-only"]


def test_draws_never_exceed_balance_or_charge_and_skip_negative_charges() -> None:
    charges = [Charge("p", D("-3")), Charge("p", D("4.00")), Charge("p", D("4.00"))]
    deductions = draw_down(
        charges, [seg("a", "5.009"), seg("b", "100")], {"b": D("-1")}, PERIOD, "USD"
    )
    assert deductions == (Deduction("a", BalanceKind.CREDIT, D("5.00")),)


def test_postpaid_commits_record_what_credits_left() -> None:
    segments = [seg("credit", "3"), seg("post", "50", kind=BalanceKind.POSTPAID_COMMIT, priority=0)]
    deductions = draw_down([Charge("p", D(10))], segments, {}, PERIOD, "USD")
    assert [(d.segment_id, d.amount) for d in deductions] == [("credit", D(3)), ("post", D(7))]


def test_contract_segments_cover_credits_commits_and_each_recurring_period() -> None:
    k = contract(
        ending_before=at(2026, 5, 15),
        billing_anchor=BillingAnchor.CONTRACT_START,
        starting_at=at(2026, 3, 10),
        credits=(Credit("cr", "Trial", D(20), MARCH, APRIL),),
        recurring_credits=(
            RecurringCredit("rc", "Free", D(9), BillingFrequency.MONTHLY, at(2026, 3, 10)),
        ),
        commits=(Commit("cm", "Commit", "pc", CommitType.PREPAID, D(100), MARCH, at(2026, 6, 1)),),
    )
    segments = contract_segments(k, at(2027, 1, 1))
    recurring = [(s.id, s.starting_at, s.ending_before) for s in segments if s.source_id == "rc"]
    assert recurring == [
        ("rc@2026-03-10T00:00:00+00:00", at(2026, 3, 10), at(2026, 4, 10)),
        ("rc@2026-04-10T00:00:00+00:00", at(2026, 4, 10), at(2026, 5, 10)),
        ("rc@2026-05-10T00:00:00+00:00", at(2026, 5, 10), at(2026, 5, 15)),
    ]
    assert {s.kind for s in segments} == {BalanceKind.CREDIT, BalanceKind.PREPAID_COMMIT}
    assert [s.id for s in contract_segments(k, at(2026, 3, 11))] == [
        "cr",
        "rc@2026-03-10T00:00:00+00:00",
        "cm",
    ]


def test_ledger_lifecycle_deduct_void_adjust_expire() -> None:
    segment = seg("a", "20")
    assert segment_start_entry(segment).amount == D(20)
    entries = [segment_start_entry(segment)]
    entries += deduction_entries([Deduction("a", BalanceKind.CREDIT, D("7.50"))], "inv1", APRIL)
    assert ledger_balance(segment, entries) == D("12.50")
    entries += void_entries(entries, "inv1", APRIL)
    assert entries[-1].type is LedgerEntryType.VOID_RESTORE
    assert ledger_balance(segment, entries) == D(20)
    entries.append(manual_adjustment(segment, entries, D(-5), APRIL))
    with pytest.raises(ValidationError, match="amount"):
        manual_adjustment(segment, entries, D(-16), APRIL)
    expired = expiration_entry(segment, entries, at(2026, 6, 1))
    assert expired is not None and expired.amount == D(-15)
    assert expiration_entry(segment, [*entries, expired], at(2026, 6, 1)) is None


def test_views_subtract_what_open_drafts_would_draw() -> None:
    segment = seg("a", "9")
    pending = [Deduction("a", BalanceKind.CREDIT, D("7.50"))]
    (view,) = balance_views([segment], {}, pending)
    assert (view.ledger_balance, view.pending_draft_deduction, view.remaining_after_drafts) == (
        D(9),
        D("7.50"),
        D("1.50"),
    )
    assert available_balances([segment], {}, pending) == {"a": Decimal("1.50")}
