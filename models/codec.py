"""JSON documents for the billing core's frozen dataclasses (catalog and contract terms).

Decimals are stored as decimal strings, datetimes as ISO-8601 UTC, enums by value, tuples
and frozensets as lists: a lossless round trip, driven by the dataclasses' type hints.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A JSON-ready form of a billing value (dataclass, Decimal, datetime, enum, tuple…)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(to_json(v) for v in value)
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(kind: Any, data: Any) -> Any:
    """The value of type ``kind`` that :func:`to_json` turned into ``data``."""
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        if data is None:
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return from_json(inner, data)
    if origin is tuple:
        args = typing.get_args(kind)
        if isinstance(data, dict):  # group values given as a JSON object
            data = sorted(data.items())
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], item) for item in data)
        return tuple(from_json(a, item) for a, item in zip(args, data, strict=True))
    if origin is frozenset:
        (inner,) = typing.get_args(kind)
        return frozenset(from_json(inner, item) for item in data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        names = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_json(hints[k], v) for k, v in data.items() if k in names})
    if kind is Decimal:
        return Decimal(data)
    if kind is datetime:
        return data if isinstance(data, datetime) else datetime.fromisoformat(data)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(data)
    return data


def decode(cls: type[T], data: Any) -> T:
    found: T = from_json(cls, data)
    return found
