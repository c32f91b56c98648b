from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing.errors import ValidationError
from billing.money import minor_units, round_money, zero
from billing.periods import (
    BillingAnchor,
    BillingFrequency,
    Period,
    add_months,
    counts_toward,
    full_period_at,
    grace_deadline,
    period_at,
    periods,
    proration_fraction,
    schedule_for,
)
from tests.unit.billing.builders import D, at


def test_money_rounds_half_up_to_the_currency_minor_unit() -> None:
    assert str(round_money(D("0.125"), "USD")) == "0.13"
    assert str(round_money(D("0.124999"), "USD")) == "0.12"
    assert str(round_money(D("-0.125"), "USD")) == "-0.13"
    assert str(round_money(D("7.5"), "JPY")) == "8"
    assert str(round_money(D("1.0005"), "KWD")) == "1.001"
    assert str(zero("USD")) == "0.00"
    assert minor_units("JPY") == 0


def test_unknown_currency_is_a_validation_error_naming_currency() -> None:
    with pytest.raises(ValidationError) as error:
        minor_units("XXX")
    assert error.value.field == "currency"
    assert error.value.code == "VALIDATION"


def test_add_months_clamps_to_month_end_and_handles_leap_years() -> None:
    assert add_months(at(2024, 1, 31), 1) == at(2024, 2, 29)
    assert add_months(at(2025, 1, 31), 1) == at(2025, 2, 28)
    assert add_months(at(2024, 1, 31), 2) == at(2024, 3, 31)
    assert add_months(at(2024, 2, 29), 12) == at(2025, 2, 28)
    assert add_months(at(2026, 1, 15), -2) == at(2025, 11, 15)


def test_contract_start_anchor_on_the_31st_never_drifts() -> None:
    schedule = schedule_for(
        at(2024, 1, 31), None, BillingFrequency.MONTHLY, BillingAnchor.CONTRACT_START
    )
    starts = [p.starting_at for p in periods(schedule, at(2024, 5, 1))]
    assert starts == [at(2024, 1, 31), at(2024, 2, 29), at(2024, 3, 31), at(2024, 4, 30)]


def test_first_of_month_cuts_the_first_period_at_the_contract_start() -> None:
    start = datetime(2026, 3, 15, 12, tzinfo=UTC)
    schedule = schedule_for(
        start, at(2026, 5, 10), BillingFrequency.MONTHLY, BillingAnchor.FIRST_OF_MONTH
    )
    assert list(periods(schedule, at(2027, 1, 1))) == [
        Period(start, at(2026, 4, 1)),
        Period(at(2026, 4, 1), at(2026, 5, 1)),
        Period(at(2026, 5, 1), at(2026, 5, 10)),
    ]
    assert full_period_at(schedule, start) == Period(at(2026, 3, 1), at(2026, 4, 1))


@pytest.mark.parametrize(
    ("frequency", "second_start"),
    [(BillingFrequency.QUARTERLY, at(2026, 5, 1)), (BillingFrequency.ANNUAL, at(2027, 2, 1))],
)
def test_quarterly_and_annual_count_from_the_start_month(
    frequency: BillingFrequency, second_start: datetime
) -> None:
    schedule = schedule_for(at(2026, 2, 15), None, frequency, BillingAnchor.FIRST_OF_MONTH)
    first, second = list(periods(schedule, second_start + timedelta(days=1)))
    assert first == Period(at(2026, 2, 15), second_start)
    assert second.starting_at == second_start


def test_period_at_finds_the_period_and_none_outside_the_contract() -> None:
    schedule = schedule_for(
        at(2026, 3, 1), at(2026, 6, 1), BillingFrequency.MONTHLY, BillingAnchor.FIRST_OF_MONTH
    )
    assert period_at(schedule, at(2026, 4, 30, 23)) == Period(at(2026, 4, 1), at(2026, 5, 1))
    assert period_at(schedule, at(2026, 2, 28)) is None
    assert period_at(schedule, at(2026, 6, 1)) is None
    assert list(periods(schedule, at(2026, 3, 1))) == []


def test_schedules_reject_naive_or_non_utc_times_and_inverted_ranges() -> None:
    with pytest.raises(ValidationError, match="starting_at"):
        schedule_for(
            datetime(2026, 3, 1), None, BillingFrequency.MONTHLY, BillingAnchor.FIRST_OF_MONTH
        )
    plus_two = datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(ValidationError, match="starting_at"):
        schedule_for(plus_two, None, BillingFrequency.MONTHLY, BillingAnchor.FIRST_OF_MONTH)
    with pytest.raises(ValidationError, match="ending_before"):
        schedule_for(
            at(2026, 3, 1), at(2026, 3, 1), BillingFrequency.MONTHLY, BillingAnchor.FIRST_OF_MONTH
        )


def test_proration_is_seconds_remaining_over_seconds_in_period() -> None:
    april = Period(at(2026, 4, 1), at(2026, 5, 1))
    assert proration_fraction(april, at(2026, 4, 16)) == D(15) / D(30)
    assert proration_fraction(april, at(2026, 3, 1)) == 1
    assert proration_fraction(april, at(2026, 6, 1)) == 0
    assert proration_fraction(april, at(2026, 4, 11), until=at(2026, 4, 21)) == D(10) / D(30)


def test_grace_window_decides_which_events_count() -> None:
    march = Period(at(2026, 3, 1), at(2026, 4, 1))
    grace = timedelta(hours=24)
    assert grace_deadline(march, grace) == at(2026, 4, 2)
    assert counts_toward(march, at(2026, 3, 31, 23), at(2026, 4, 1, 23), grace)
    assert not counts_toward(march, at(2026, 3, 31, 23), at(2026, 4, 2), grace)
    assert not counts_toward(march, at(2026, 4, 1), at(2026, 4, 1), grace)
    assert march.overlaps(at(2026, 2, 1), None)
    assert not march.overlaps(at(2026, 2, 1), at(2026, 3, 1))
