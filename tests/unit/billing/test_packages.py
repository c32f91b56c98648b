"""Packages (SPEC §5): templates whose term times are ISO-8601 offsets from the start of
the contract made from them."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from billing.contracts import CommitType, QuantityChange
from billing.errors import ValidationError
from billing.packages import (
    Package,
    PackageCommit,
    PackageCredit,
    PackageRecurringCredit,
    PackageSubscription,
    instantiate,
    validate_package,
)
from billing.periods import BillingAnchor, BillingFrequency
from tests.unit.billing.builders import D, at

START = at(2026, 1, 31, 9)


def counter() -> Callable[[str], str]:
    """An id factory that numbers ids in the order they are asked for."""
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(numbers)}"


def full_package(**changes: object) -> Package:
    package = Package(
        id="pkg",
        name="Starter",
        rate_card_id="rc",
        billing_frequency=BillingFrequency.QUARTERLY,
        billing_anchor=BillingAnchor.CONTRACT_START,
        net_payment_terms_days=15,
        duration="P1Y",
        credits=(
            PackageCredit("Welcome", D(5), ending_offset="P1M"),
            PackageCredit(
                "Early",
                D(3),
                starting_offset="-P7D",
                ending_offset="P10D",
                priority=1,
                applicable_product_ids=frozenset({"tokens"}),
            ),
        ),
        recurring_credits=(
            PackageRecurringCredit("Monthly", D(9), BillingFrequency.MONTHLY),
            PackageRecurringCredit(
                "Bonus",
                D(2),
                BillingFrequency.MONTHLY,
                starting_offset="P1M",
                ending_offset="P6M",
                priority=2,
                applicable_product_ids=frozenset({"tokens"}),
            ),
        ),
        commits=(
            PackageCommit("Prepaid", "fee", CommitType.PREPAID, D(100), ending_offset="P1Y"),
            PackageCommit(
                "Minimum",
                "fee",
                CommitType.POSTPAID,
                D(50),
                starting_offset="PT12H",
                ending_offset="P3M",
                priority=3,
                applicable_product_ids=frozenset({"tokens"}),
                invoice_offset="-P1D",
            ),
        ),
        subscriptions=(
            PackageSubscription("seats", D(3)),
            PackageSubscription("support", D(1), starting_offset="P2W", proration=False),
        ),
    )
    return replace(package, **changes)  # type: ignore[arg-type]


def test_instantiate_dates_every_term_from_the_start() -> None:
    made = instantiate(full_package(), "cus", START, counter())
    assert (made.customer_id, made.rate_card_id, made.starting_at) == ("cus", "rc", START)
    assert made.ending_before == at(2027, 1, 31, 9)
    assert (made.billing_frequency, made.billing_anchor) == (
        BillingFrequency.QUARTERLY,
        BillingAnchor.CONTRACT_START,
    )
    assert made.net_payment_terms_days == 15
    welcome, early = made.credits
    # January 31 + one month is clamped to February 28
    assert (welcome.starting_at, welcome.ending_before) == (START, at(2026, 2, 28, 9))
    assert (welcome.amount, welcome.priority, welcome.applicable_product_ids) == (D(5), None, None)
    # a negative offset moves before the start
    assert (early.starting_at, early.ending_before) == (at(2026, 1, 24, 9), at(2026, 2, 10, 9))
    assert (early.priority, early.applicable_product_ids) == (1, frozenset({"tokens"}))
    monthly, bonus = made.recurring_credits
    assert (monthly.starting_at, monthly.ending_before, monthly.frequency) == (
        START,
        None,
        BillingFrequency.MONTHLY,
    )
    assert (bonus.starting_at, bonus.ending_before) == (at(2026, 2, 28, 9), at(2026, 7, 31, 9))
    assert (bonus.priority, bonus.applicable_product_ids) == (2, frozenset({"tokens"}))
    prepaid, minimum = made.commits
    assert (prepaid.starting_at, prepaid.ending_before, prepaid.invoice_at) == (
        START,
        at(2027, 1, 31, 9),
        None,
    )
    assert (prepaid.product_id, prepaid.type, prepaid.amount) == ("fee", CommitType.PREPAID, D(100))
    assert minimum.starting_at == at(2026, 1, 31, 21)
    assert (minimum.ending_before, minimum.invoice_at) == (at(2026, 4, 30, 9), at(2026, 1, 30, 9))
    assert (minimum.type, minimum.priority) == (CommitType.POSTPAID, 3)
    assert minimum.applicable_product_ids == frozenset({"tokens"})
    seats, support = made.subscriptions
    assert (seats.product_id, seats.quantity_schedule, seats.proration) == (
        "seats",
        (QuantityChange(START, D(3)),),
        True,
    )
    assert support.quantity_schedule == (QuantityChange(START + timedelta(weeks=2), D(1)),)
    assert support.proration is False
    assert (made.overrides, made.scheduled_charges) == ((), ())


def test_months_clamp_to_the_end_of_the_target_month_in_a_leap_year() -> None:
    package = full_package(credits=(PackageCredit("C", D(1), ending_offset="P1M"),))
    made = instantiate(package, "cus", at(2024, 1, 31), counter())
    assert made.credits[0].ending_before == at(2024, 2, 29)
    made = instantiate(package, "cus", at(2024, 3, 31), counter())
    assert made.credits[0].ending_before == at(2024, 4, 30)


def test_ids_come_from_the_given_factory() -> None:
    asked: list[str] = []

    def new_id(prefix: str) -> str:
        asked.append(prefix)
        return f"{prefix}-{len(asked)}"

    made = instantiate(full_package(), "cus", START, new_id)
    assert asked == ["cred", "cred", "rcred", "rcred", "cmt", "cmt", "sub", "sub", "ctr"]
    assert made.id == "ctr-9"
    assert [c.id for c in made.credits] == ["cred-1", "cred-2"]
    assert [r.id for r in made.recurring_credits] == ["rcred-3", "rcred-4"]
    assert [c.id for c in made.commits] == ["cmt-5", "cmt-6"]
    assert [s.id for s in made.subscriptions] == ["sub-7", "sub-8"]


def test_an_empty_open_ended_package_is_a_bare_contract() -> None:
    package = Package(id="pkg", name="Bare", rate_card_id="rc")
    made = instantiate(package, "cus", START, counter())
    assert made.ending_before is None
    assert (made.billing_frequency, made.billing_anchor) == (
        BillingFrequency.MONTHLY,
        BillingAnchor.FIRST_OF_MONTH,
    )
    assert made.net_payment_terms_days == 30
    assert (made.credits, made.recurring_credits, made.commits, made.subscriptions) == (
        (),
        (),
        (),
        (),
    )
    assert made.id == "ctr_1"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": "one year"}, "duration"),
        ({"duration": "P"}, "duration"),
        (
            {"credits": (PackageCredit("C", D(1), ending_offset="P1M"),
                         PackageCredit("D", D(1), ending_offset="1 month"))},
            "credits[1].ending_offset",
        ),
        (
            {"credits": (PackageCredit("C", D(1), ending_offset="P1M", starting_offset="P1X"),)},
            "credits[0].starting_offset",
        ),
        (
            {"recurring_credits": (PackageRecurringCredit("R", D(1), BillingFrequency.MONTHLY,
                                                          starting_offset="soon"),)},
            "recurring_credits[0].starting_offset",
        ),
        (
            {"recurring_credits": (PackageRecurringCredit("R", D(1), BillingFrequency.MONTHLY,
                                                          ending_offset="PT"),)},
            "recurring_credits[0].ending_offset",
        ),
        (
            {"commits": (PackageCommit("C", "fee", CommitType.PREPAID, D(1), ending_offset="P1Y",
                                       starting_offset="1D"),)},
            "commits[0].starting_offset",
        ),
        (
            {"commits": (PackageCommit("C", "fee", CommitType.PREPAID, D(1),
                                       ending_offset="P1Y1Y"),)},
            "commits[0].ending_offset",
        ),
        (
            {"commits": (PackageCommit("C", "fee", CommitType.PREPAID, D(1), ending_offset="P1Y",
                                       invoice_offset="P-1D"),)},
            "commits[0].invoice_offset",
        ),
        (
            {"subscriptions": (PackageSubscription("seats", D(1)),
                               PackageSubscription("seats", D(1), starting_offset="T1H"))},
            "subscriptions[1].starting_offset",
        ),
    ],
)  # fmt: skip
def test_a_malformed_offset_names_its_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as error:
        instantiate(full_package(**changes), "cus", START, counter())
    assert error.value.field == field
    with pytest.raises(ValidationError) as error:
        validate_package(full_package(**changes))
    assert error.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # the credit would end before it starts
        (
            {"credits": (PackageCredit("C", D(1), starting_offset="P1M", ending_offset="P0D"),)},
            "credits[0].ending_before",
        ),
        # the contract would end before it starts
        ({"duration": "-P1D"}, "ending_before"),
        ({"credits": (PackageCredit("C", D(0), ending_offset="P1M"),)}, "credits[0].amount"),
        (
            {"recurring_credits": (PackageRecurringCredit("R", D(-1), BillingFrequency.MONTHLY),)},
            "recurring_credits[0].amount",
        ),
        (
            {"subscriptions": (PackageSubscription("seats", D(-1)),)},
            "subscriptions[0].quantity_schedule[0].quantity",
        ),
    ],
)  # fmt: skip
def test_a_package_giving_an_invalid_contract_names_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        instantiate(full_package(**changes), "cus", START, counter())
    assert error.value.field == field
    with pytest.raises(ValidationError) as error:
        validate_package(full_package(**changes))
    assert error.value.field == field


def test_validate_package_accepts_a_valid_package() -> None:
    validate_package(full_package())
    validate_package(Package(id="pkg", name="Bare", rate_card_id="rc"))


@pytest.mark.parametrize("name", ["", "   "])
def test_validate_package_needs_a_name(name: str) -> None:
    with pytest.raises(ValidationError) as error:
        validate_package(full_package(name=name))
    assert error.value.field == "name"


def test_instantiate_keeps_the_starts_time_of_day_and_zone() -> None:
    start = datetime.fromisoformat("2026-03-15T17:45:30+00:00")
    package = full_package(credits=(PackageCredit("C", D(1), ending_offset="P1DT2H15M"),))
    made = instantiate(package, "cus", start, counter())
    assert made.credits[0].ending_before == datetime.fromisoformat("2026-03-16T20:00:30+00:00")
    assert made.credits[0].ending_before.utcoffset() == timedelta(0)
