"""Validation of one ingested usage event (SPEC §1), judged on its own.

``validate_event`` turns one decoded JSON object into a :class:`UsageEvent` or a
:class:`Rejection` with one of the public codes. JSON numbers must arrive as ``Decimal``
(decode with ``parse_float=Decimal``) so that a property like ``0.1`` keeps its exact
decimal string; nothing here rounds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.metering import UsageEvent

MAX_ID_LENGTH = 128
MAX_PROPERTIES = 100
MAX_PROPERTY_NAME_LENGTH = 128
MAX_PROPERTY_VALUE_LENGTH = 4096
DEDUPE_WINDOW = timedelta(days=34)
FUTURE_TOLERANCE = timedelta(minutes=5)

INVALID_FIELD = "invalid_field"
TIMESTAMP_TOO_OLD = "timestamp_too_old"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
INVALID_PROPERTIES = "invalid_properties"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,  # RFC 3339 digits are ASCII: not "２０２６"
)


@dataclass(frozen=True)
class Rejection:
    """Why an event was not stored: a public ``code`` and a human ``message``."""

    code: str
    message: str


def parse_rfc3339(text: str) -> datetime | None:
    """An aware UTC datetime for an RFC 3339 timestamp, or None if ``text`` is not one
    or names a moment outside years 1–9999 once in UTC (``9999-12-31T23:59:59-01:00``).

    Fractions beyond microseconds are truncated (never rounded up into the next second).
    """
    found = _RFC3339.match(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = (int(found.group(i)) for i in range(1, 7))
    fraction = (found.group(7) or "").ljust(6, "0")[:6]
    try:
        moment = datetime(
            year, month, day, hour, minute, 59 if second == 60 else second, int(fraction), UTC
        )
    except ValueError:
        return None
    if found.group(9) is not None:
        if int(found.group(10)) > 23 or int(found.group(11)) > 59:
            return None
        offset = timedelta(hours=int(found.group(10)), minutes=int(found.group(11)))
        try:
            moment -= offset if found.group(9) == "+" else -offset
        except OverflowError:
            return None
    return moment


def storable(text: str) -> bool:
    """Whether ``text`` can be stored as UTF-8 text: no lone surrogates, no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_field(raw: Mapping[str, object], name: str) -> str | Rejection:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        return Rejection(INVALID_FIELD, f"{name} is required and must be a non-empty string")
    if not storable(value):
        return Rejection(INVALID_FIELD, f"{name} has a NUL or an unpaired surrogate")
    if len(value) > MAX_ID_LENGTH:
        return Rejection(INVALID_FIELD, f"{name} is longer than {MAX_ID_LENGTH} characters")
    return value


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return None


def normalize_properties(raw: object) -> dict[str, str] | Rejection:
    """Properties as a flat ``str → str`` mapping; numbers become their decimal string."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        return Rejection(INVALID_PROPERTIES, "properties must be an object")
    if len(raw) > MAX_PROPERTIES:
        return Rejection(INVALID_PROPERTIES, f"more than {MAX_PROPERTIES} properties")
    result: dict[str, str] = {}
    for name, value in raw.items():
        if (
            not isinstance(name, str)
            or not name
            or len(name) > MAX_PROPERTY_NAME_LENGTH
            or not storable(name)
        ):
            return Rejection(INVALID_PROPERTIES, f"property name {str(name)[:40]!r} is invalid")
        text = _scalar_text(value)
        if text is None:
            kind = "null" if value is None else type(value).__name__
            return Rejection(INVALID_PROPERTIES, f"property {name!r} is {kind}, not a scalar")
        if not storable(text):
            return Rejection(INVALID_PROPERTIES, f"property {name!r} has a NUL or a lone surrogate")
        if len(text) > MAX_PROPERTY_VALUE_LENGTH:
            return Rejection(
                INVALID_PROPERTIES,
                f"property {name!r} is longer than {MAX_PROPERTY_VALUE_LENGTH} characters",
            )
        result[name] = text
    return result


def validate_event(raw: Mapping[str, object], now: datetime) -> UsageEvent | Rejection:
    """Judge one event at server time ``now`` (aware UTC).

    Order of checks: required fields (``invalid_field``), properties
    (``invalid_properties``), then the timestamp window: older than 34 days before ``now``
    is ``timestamp_too_old``, more than 5 minutes after ``now`` is ``timestamp_in_future``.
    """
    fields: dict[str, str] = {}
    for name in ("transaction_id", "customer_id", "event_type", "timestamp"):
        checked = _text_field(raw, name)
        if isinstance(checked, Rejection):
            return checked
        fields[name] = checked
    timestamp = parse_rfc3339(fields["timestamp"])
    if timestamp is None:
        return Rejection(INVALID_FIELD, "timestamp must be an RFC 3339 date-time")
    properties = normalize_properties(raw.get("properties"))
    if isinstance(properties, Rejection):
        return properties
    if timestamp < now - DEDUPE_WINDOW:
        return Rejection(TIMESTAMP_TOO_OLD, "timestamp is more than 34 days in the past")
    if timestamp > now + FUTURE_TOLERANCE:
        return Rejection(TIMESTAMP_IN_FUTURE, "timestamp is more than 5 minutes in the future")
    return UsageEvent(
        transaction_id=fields["transaction_id"],
        customer_id=fields["customer_id"],
        event_type=fields["event_type"],
        timestamp=timestamp,
        properties=properties,
    )
