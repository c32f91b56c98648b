"""Exact wire scalars: ``Decimal`` as a decimal string, ``DateTime`` as ISO-8601 with a
UTC offset (stored and returned in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError


def parse_decimal(value: Any) -> Decimal:
    """A finite decimal from a string or an integer; JSON floats are refused because they
    may already have lost digits."""
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
    return parsed


def parse_datetime(value: Any) -> datetime:
    """An aware datetime (``Z`` or an offset is required), converted to UTC."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime values are ISO-8601 strings, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise StrawberryInputCoercionError(f"not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise StrawberryInputCoercionError(f"date-time needs a UTC offset (e.g. Z): {value!r}")
    return parsed.astimezone(UTC)


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
