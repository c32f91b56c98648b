"""GraphQL inputs to the billing core's values, and stored pages to connections."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from billing.catalog import PriceSpec, Rate
from billing.errors import ValidationError
from models.codec import decode
from schema.pagination import Connection, Edge, PageInfo

T = TypeVar("T")
N = TypeVar("N")

PRICE_FIELDS = tuple(f.name for f in dataclasses.fields(PriceSpec))


def plain(value: Any, path: str = "") -> Any:
    """A strawberry input as plain data (dicts, lists, scalars); ``uniqueness_key`` and
    unset (None) fields dropped; JSON objects must map names to strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name), f"{path}.{f.name}".lstrip("."))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None and f.name != "uniqueness_key"
        }
    if isinstance(value, list):
        return [plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str):
                raise ValidationError(f"{path}.{key}", "group values must be strings")
        return value
    return value


def core_of(cls: type[T], data: dict[str, Any]) -> T:
    """The core value ``cls`` built from plain input data."""
    try:
        return decode(cls, data)
    except (TypeError, ValueError, KeyError) as error:
        raise ValidationError("input", f"malformed input: {error}") from error


def rate_of(data: dict[str, Any]) -> Rate:
    """A core rate from a flat rate input (its price fields form the ``spec``)."""
    spec = {k: data.pop(k) for k in PRICE_FIELDS if k in data}
    return core_of(Rate, {**data, "spec": spec})


def connection(
    found: tuple[Sequence[tuple[str, T]], bool], make: Callable[[T], N]
) -> Connection[N]:
    """A connection of ``make(item)`` for a stored page ``(rows with cursors, has_next)``."""
    rows, has_next = found
    edges = [Edge(cursor=cursor, node=make(item)) for cursor, item in rows]
    return Connection(
        edges=edges,
        nodes=[edge.node for edge in edges],
        page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
    )
