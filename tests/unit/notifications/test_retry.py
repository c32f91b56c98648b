from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.retry import (
    DEFAULT_SCHEDULE,
    JITTER,
    next_delay,
    parse_retry_after,
    should_disable,
)

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
jitters = st.floats(min_value=-JITTER, max_value=JITTER, allow_nan=False)
attempts = st.integers(min_value=1, max_value=len(DEFAULT_SCHEDULE))


def test_default_schedule_allows_eight_attempts() -> None:
    hours = [timedelta(hours=h) for h in (2, 5, 10, 10)]
    expected = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), *hours)
    assert expected == DEFAULT_SCHEDULE
    delays = [next_delay(n, DEFAULT_SCHEDULE, 0.0) for n in range(1, 9)]
    assert delays == [*DEFAULT_SCHEDULE, None]


@pytest.mark.parametrize(
    ("failed", "jitter", "expected"),
    [
        (1, 0.2, timedelta(seconds=6)),
        (1, -0.2, timedelta(seconds=4)),
        (2, 0.1, timedelta(minutes=5, seconds=30)),
        (4, -0.05, timedelta(hours=1, minutes=54)),
        (7, 0.2, timedelta(hours=12)),
    ],
)
def test_jitter_scales_the_scheduled_delay(failed: int, jitter: float, expected: timedelta) -> None:
    assert next_delay(failed, DEFAULT_SCHEDULE, jitter) == expected


def test_no_retry_left_after_the_last_attempt() -> None:
    assert next_delay(8, DEFAULT_SCHEDULE, 0.1) is None
    assert next_delay(100, DEFAULT_SCHEDULE, 0.1, timedelta(seconds=1)) is None
    assert next_delay(1, (), 0.0) is None


@pytest.mark.parametrize(
    ("failed", "retry_after", "expected"),
    [
        (1, timedelta(seconds=1), timedelta(seconds=4)),  # raised to 5 s × 0.8
        (1, timedelta(seconds=5), timedelta(seconds=5)),
        (1, timedelta(seconds=6), timedelta(seconds=6)),  # exactly the upper bound
        (1, timedelta(seconds=60), timedelta(seconds=6)),  # capped at 5 s × 1.2
        (2, timedelta(hours=1), timedelta(minutes=6)),  # capped at 5 min × 1.2
        (3, timedelta(minutes=30), timedelta(minutes=30)),
        (3, timedelta(0), timedelta(minutes=24)),  # "retry now" cannot burn the attempts
        (3, timedelta(seconds=-30), timedelta(minutes=24)),
        (5, timedelta.max, timedelta(hours=6)),
    ],
)
def test_retry_after_is_honoured_within_the_steps_bounds(
    failed: int, retry_after: timedelta, expected: timedelta
) -> None:
    assert next_delay(failed, DEFAULT_SCHEDULE, -0.2, retry_after) == expected


@given(failed=attempts, jitter=jitters)
def test_delay_stays_within_twenty_percent_of_the_schedule(failed: int, jitter: float) -> None:
    scheduled = DEFAULT_SCHEDULE[failed - 1]
    delay = next_delay(failed, DEFAULT_SCHEDULE, jitter)
    assert delay is not None
    assert scheduled * 0.8 <= delay <= scheduled * 1.2


@given(
    failed=attempts,
    jitter=jitters,
    seconds=st.integers(min_value=-(10**6), max_value=10**8),
)
def test_retry_after_delay_stays_within_the_steps_bounds(
    failed: int, jitter: float, seconds: int
) -> None:
    scheduled = DEFAULT_SCHEDULE[failed - 1]
    delay = next_delay(failed, DEFAULT_SCHEDULE, jitter, timedelta(seconds=seconds))
    assert delay is not None
    assert scheduled * 0.8 <= delay <= scheduled * 1.2
    if scheduled * 0.8 <= timedelta(seconds=seconds) <= scheduled * 1.2:
        assert delay == timedelta(seconds=seconds)


@given(jitter=jitters)
def test_delays_grow_with_the_attempt_number_for_a_given_jitter(jitter: float) -> None:
    delays = [next_delay(n, DEFAULT_SCHEDULE, jitter) for n in range(1, 8)]
    assert all(d is not None for d in delays)
    assert delays == sorted(delays)  # type: ignore[type-var]


@pytest.mark.parametrize("jitter", [0.21, -0.5, 1.0, float("nan"), float("inf")])
def test_jitter_outside_the_bound_is_a_programming_error(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_delay(1, DEFAULT_SCHEDULE, jitter)


@pytest.mark.parametrize("failed", [0, -1])
def test_attempt_count_starts_at_one(failed: int) -> None:
    with pytest.raises(ValueError, match="failed_attempts"):
        next_delay(failed, DEFAULT_SCHEDULE, 0.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("  7 ", timedelta(seconds=7)),
        ("0", timedelta(0)),
        ("Fri, 10 Apr 2026 12:05:00 GMT", timedelta(minutes=5)),
        ("Fri, 10 Apr 2026 14:00:30 +0200", timedelta(seconds=30)),
        ("Fri, 10 Apr 2026 12:00:10 -0000", timedelta(seconds=10)),  # no zone: UTC
        ("Thu, 09 Apr 2026 12:00:00 GMT", timedelta(0)),  # in the past
        ("Wed, 21 Oct 2015 07:28:00 GMT", timedelta(0)),
        ("9" * 40, timedelta.max),
    ],
)
def test_parse_retry_after(value: str, expected: timedelta) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value", [None, "", "   ", "-5", "1.5", "soon", "12 s", "²", "Fri, 99 Foo 2026", "0x10"]
)
def test_parse_retry_after_ignores_missing_or_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_nor_goes_negative(value: str) -> None:
    parsed = parse_retry_after(value, NOW)
    assert parsed is None or parsed >= timedelta(0)


def test_parse_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("5", datetime(2026, 4, 10, 12, 0))


@pytest.mark.parametrize(
    ("failing_since", "expected"),
    [
        (None, False),
        (NOW, False),
        (NOW - timedelta(days=4, hours=23, minutes=59), False),
        (NOW - timedelta(days=5), True),
        (NOW - timedelta(days=30), True),
    ],
)
def test_should_disable_after_five_days_of_failures(
    failing_since: datetime | None, expected: bool
) -> None:
    assert should_disable(failing_since, NOW) is expected


def test_should_disable_with_a_custom_window() -> None:
    assert should_disable(NOW - timedelta(hours=1), NOW, after=timedelta(hours=1)) is True
    assert should_disable(NOW - timedelta(minutes=59), NOW, after=timedelta(hours=1)) is False
