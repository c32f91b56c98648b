"""Timestamps whose UTC moment falls outside years 1–9999 are invalid, never a crash."""

from datetime import UTC, datetime

import pytest

from billing.events import INVALID_FIELD, Rejection, parse_rfc3339, validate_event

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-23:59", "9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+00:01"]
)
def test_offsets_past_the_calendar_are_not_timestamps(stamp: str) -> None:
    assert parse_rfc3339(stamp) is None
    event = {"transaction_id": "t", "customer_id": "c", "event_type": "e", "timestamp": stamp}
    judged = validate_event(event, NOW)
    assert isinstance(judged, Rejection) and judged.code == INVALID_FIELD


def test_the_calendar_edges_themselves_are_timestamps() -> None:
    assert parse_rfc3339("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_rfc3339("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert parse_rfc3339("0001-01-01T00:30:00+00:30") == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "stamp", ["２０２６-04-10T12:00:00Z", "2026-04-10T12:00:00+０1:00", "٢٠٢٦-04-10T12:00:00Z"]
)
def test_only_ascii_digits_make_a_timestamp(stamp: str) -> None:
    assert parse_rfc3339(stamp) is None
