"""Build GraphQL objects from the billing core's values by field name.

A GraphQL type whose plain fields share their names with a core dataclass is filled from
it: nested dataclasses become nested GraphQL objects, tuples become lists, group values
(pairs) become JSON objects, frozensets become sorted lists. Fields with resolvers are
left to their resolvers; ``overrides`` supply what the core value lacks.
"""

from __future__ import annotations

from typing import Any, TypeVar

from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

T = TypeVar("T")


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, StrawberryOptional):
        return _convert(kind.of_type, value)
    if isinstance(kind, StrawberryList):
        items = sorted(value) if isinstance(value, frozenset) else value
        return [_convert(kind.of_type, item) for item in items]
    if has_object_definition(kind):
        return view(kind, value)
    if getattr(kind, "__name__", "") == "JSON" and isinstance(value, tuple):
        return dict(value)
    return value


def view(cls: type[T], *values: Any, **overrides: Any) -> T:
    """An instance of the GraphQL type ``cls`` holding the fields of the same name of the
    first of ``values`` that has them (``overrides`` first)."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    arguments: dict[str, Any] = {}
    for field in definition.fields:
        if field.base_resolver is not None or not field.init:
            continue
        name = field.python_name
        if name in overrides:
            arguments[name] = overrides[name]
        else:
            source = next(v for v in values if hasattr(v, name))
            arguments[name] = _convert(field.type, getattr(source, name))
    return cls(**arguments)
