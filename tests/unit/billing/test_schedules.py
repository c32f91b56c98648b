from __future__ import annotations

from datetime import timedelta

import pytest

from billing.contracts import Commit, CommitType, Credit
from billing.errors import ValidationError
from billing.schedules import (
    LifecycleEvent,
    OffsetRule,
    due_between,
    lifecycle_occurrences,
    offset_occurrences,
    parse_duration,
)
from tests.unit.billing.builders import APRIL, MARCH, D, at, contract

K = contract(
    ending_before=at(2026, 6, 1),
    credits=(Credit("cr", "Credit", D(5), MARCH, APRIL),),
    commits=(Commit("cm", "Commit", "pc", CommitType.PREPAID, D(9), APRIL, at(2026, 5, 1)),),
)


def test_occurrences_cover_contract_and_segments_in_time_order() -> None:
    found = [(o.type, o.object_id, o.at) for o in lifecycle_occurrences(K, at(2027, 1, 1))]
    assert found == [
        (LifecycleEvent.CONTRACT_STARTED, "k", MARCH),
        (LifecycleEvent.CREDIT_SEGMENT_STARTED, "cr", MARCH),
        (LifecycleEvent.COMMIT_SEGMENT_STARTED, "cm", APRIL),
        (LifecycleEvent.CREDIT_SEGMENT_ENDED, "cr", APRIL),
        (LifecycleEvent.COMMIT_SEGMENT_ENDED, "cm", at(2026, 5, 1)),
        (LifecycleEvent.CONTRACT_ENDED, "k", at(2026, 6, 1)),
    ]
    assert LifecycleEvent.CONTRACT_ENDED not in [
        o.type for o in lifecycle_occurrences(contract(), APRIL)
    ]


@pytest.mark.parametrize(
    ("text", "months", "delta", "negative"),
    [
        ("-P7D", 0, timedelta(days=7), True),
        ("PT2H", 0, timedelta(hours=2), False),
        (
            "+P1Y2M3W4DT5H6M7.5S",
            14,
            timedelta(weeks=3, days=4, hours=5, minutes=6, seconds=7, milliseconds=500),
            False,
        ),
    ],
)
def test_parse_signed_iso_durations(
    text: str, months: int, delta: timedelta, negative: bool
) -> None:
    parsed = parse_duration(text)
    assert (parsed.months, parsed.delta, parsed.negative) == (months, delta, negative)


@pytest.mark.parametrize("text", ["P", "PT", "7D", "P1H", "-P", "P1.5D", "PT1H2D", ""])
def test_malformed_durations_name_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_duration(text, "offsets[0].offset")
    assert error.value.field == "offsets[0].offset"


def test_durations_apply_calendar_months_with_clamping() -> None:
    assert parse_duration("P1M").applied_to(at(2026, 1, 31)) == at(2026, 2, 28)
    assert parse_duration("-P1MT1H").applied_to(at(2026, 3, 31, 5)) == at(2026, 2, 28, 4)


def test_offsets_fire_relative_to_their_trigger_and_never_back_fill() -> None:
    rule = OffsetRule(
        "r",
        "week before end",
        LifecycleEvent.CREDIT_SEGMENT_ENDED,
        parse_duration("-P7D"),
        at(2026, 3, 20),
    )
    (due,) = offset_occurrences(rule, lifecycle_occurrences(K, at(2027, 1, 1)))
    assert (due.at, due.type, due.offset) == (
        at(2026, 3, 25),
        "credit.segment_ended.offset",
        "-P7D",
    )
    assert due.key == ("r", "credit.segment_ended", "cr", APRIL.isoformat())
    late_rule = OffsetRule(
        "r", "late", LifecycleEvent.CREDIT_SEGMENT_ENDED, parse_duration("-P7D"), at(2026, 3, 26)
    )
    assert offset_occurrences(late_rule, lifecycle_occurrences(K, at(2027, 1, 1))) == ()


def test_adjoining_windows_fire_each_occurrence_once() -> None:
    occurrences = lifecycle_occurrences(K, at(2027, 1, 1))
    first = due_between(occurrences, MARCH, APRIL)
    second = due_between(occurrences, APRIL, at(2026, 7, 1))
    assert len(first) + len(second) == len(occurrences)
    assert not set(first) & set(second)
