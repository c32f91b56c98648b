"""Validation of single ingested events (SPEC §1)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.events import Rejection, normalize_properties, parse_rfc3339, validate_event
from billing.metering import UsageEvent

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "event_type": "api_call",
        "timestamp": "2026-04-10T11:00:00Z",
        "properties": {"n": "1"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def code(raw: dict[str, object]) -> str | None:
    judged = validate_event(raw, NOW)
    return judged.code if isinstance(judged, Rejection) else None


@pytest.mark.parametrize("name", ["transaction_id", "customer_id", "event_type", "timestamp"])
@pytest.mark.parametrize("value", [..., "", "   ", 7, None, ["x"], "x" * 129])
def test_required_fields_are_invalid_field(name: str, value: object) -> None:
    assert code(event(**{name: value})) == "invalid_field"


def test_128_characters_is_the_longest_accepted_id() -> None:
    assert code(event(transaction_id="x" * 128)) is None


@pytest.mark.parametrize(
    "stamp",
    [
        "yesterday",
        "2026-04-10",
        "2026-04-10T11:00:00",
        "2026-02-30T00:00:00Z",
        "2026-04-10T25:00:00Z",
        "2026-04-10T11:00:61Z",
        "1712746800",
    ],
)
def test_non_rfc3339_timestamps_are_invalid_field(stamp: str) -> None:
    assert code(event(timestamp=stamp)) == "invalid_field"


def test_offsets_fractions_and_leap_seconds_normalize_to_utc() -> None:
    assert parse_rfc3339("2026-04-10T13:30:00+02:00") == datetime(2026, 4, 10, 11, 30, tzinfo=UTC)
    assert parse_rfc3339("2026-04-10t11:00:00.123456789z") == datetime(
        2026, 4, 10, 11, 0, 0, 123456, tzinfo=UTC
    )
    assert parse_rfc3339("2026-06-30T23:59:60Z") == datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)


def test_timestamp_window_is_34_days_back_and_5_minutes_ahead() -> None:
    def at(delta: timedelta) -> str:
        return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    assert code(event(timestamp=at(-timedelta(days=34)))) is None
    assert code(event(timestamp=at(-timedelta(days=34, microseconds=1)))) == "timestamp_too_old"
    assert code(event(timestamp=at(timedelta(minutes=5)))) is None
    assert code(event(timestamp=at(timedelta(minutes=5, microseconds=1)))) == (
        "timestamp_in_future"
    )


@pytest.mark.parametrize(
    "props", [{"a": {"b": "c"}}, {"a": [1]}, {"a": None}, "flat", [1, 2], {"": "x"}]
)
def test_properties_must_be_a_flat_object_of_scalars(props: object) -> None:
    assert code(event(properties=props)) == "invalid_properties"


def test_field_errors_are_reported_before_property_and_time_errors() -> None:
    assert code(event(timestamp="nope", properties={"a": {}})) == "invalid_field"
    assert code(event(timestamp="2020-01-01T00:00:00Z", properties={"a": {}})) == (
        "invalid_properties"
    )


def test_numbers_and_booleans_become_exact_strings() -> None:
    props = normalize_properties(
        {"f": Decimal("0.1"), "big": Decimal("1234567890.123456789"), "i": 3, "b": True}
    )
    assert props == {"f": "0.1", "big": "1234567890.123456789", "i": "3", "b": "true"}


def test_missing_properties_are_empty_and_the_event_is_returned_whole() -> None:
    judged = validate_event(event(properties=...), NOW)
    assert judged == UsageEvent("t1", "c1", "api_call", datetime(2026, 4, 10, 11, tzinfo=UTC), {})


def test_oversized_properties_are_rejected() -> None:
    assert code(event(properties={"a": "x" * 4097})) == "invalid_properties"
    assert code(event(properties={str(i): "x" for i in range(101)})) == "invalid_properties"
    assert code(event(properties={"k" * 129: "x"})) == "invalid_properties"


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_text_that_cannot_be_stored_is_rejected(bad: str) -> None:
    assert code(event(transaction_id=bad)) == "invalid_field"
    assert code(event(properties={"k": bad})) == "invalid_properties"
    assert code(event(properties={bad: "v"})) == "invalid_properties"
