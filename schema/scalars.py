"""Exact wire scalars: ``Decimal`` as a decimal string, ``DateTime`` as ISO-8601 with a
UTC offset (stored and returned in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError

MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 12


def parse_decimal(value: Any) -> Decimal:
    """A finite decimal from a string or an integer, of at most 15 digits before the point
    and 12 after (money, quantities and factors of a billing engine; larger values would
    overflow the core's exact arithmetic when multiplied). JSON floats are refused because
    they may already have lost digits."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise StrawberryInputCoercionError(
            f'Decimal values are sent as strings (e.g. "12.50"), got {value!r}'
        )
    try:
        parsed = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise StrawberryInputCoercionError(f"not a decimal number: {value!r}") from None
    if not parsed.is_finite():
        raise StrawberryInputCoercionError(f"not a finite decimal number: {value!r}")
    if parsed and parsed.adjusted() >= MAX_INTEGER_DIGITS:
        raise StrawberryInputCoercionError(
            f"more than {MAX_INTEGER_DIGITS} digits before the decimal point: {value!r:.40}"
        )
    exponent = parsed.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > MAX_FRACTION_DIGITS:
        raise StrawberryInputCoercionError(
            f"more than {MAX_FRACTION_DIGITS} digits after the decimal point: {value!r:.40}"
        )
    return parsed


def parse_datetime(value: Any) -> datetime:
    """An aware datetime (``Z`` or an offset is required), converted to UTC (which must
    fall within years 1–9999)."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime values are ISO-8601 strings, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise StrawberryInputCoercionError(f"not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise StrawberryInputCoercionError(f"date-time needs a UTC offset (e.g. Z): {value!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise StrawberryInputCoercionError(f"date-time out of range in UTC: {value!r}") from None


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, sent and returned as a string ("12.50").',
    serialize=str,
    parse_value=parse_decimal,
)

DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description='An ISO-8601 date-time with a UTC offset; returned in UTC ("…Z").',
    serialize=_format_datetime,
    parse_value=parse_datetime,
)

SCALAR_MAP: dict[object, Any] = {Decimal: DecimalScalar, datetime: DateTimeScalar}
