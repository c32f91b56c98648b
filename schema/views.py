"""Build GraphQL objects from the billing core's values by field name.

A GraphQL type whose plain fields share their names with a core dataclass is filled from
it: nested dataclasses become nested GraphQL objects, tuples become lists, group values
(pairs) become JSON objects, frozensets become sorted lists. Fields with resolvers are
left to their resolvers; ``overrides`` supply what the core value lacks. The conversion
of each GraphQL type is worked out once and cached (drafts hold thousands of lines).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from strawberry.types.base import StrawberryList, StrawberryOptional, has_object_definition

T = TypeVar("T")
Convert = Callable[[Any], Any] | None  # None: the value as is


def _list(inner: Convert) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        items = sorted(value) if isinstance(value, frozenset) else value
        return list(items) if inner is None else [inner(item) for item in items]

    return convert


def _json(value: Any) -> Any:
    return dict(value) if isinstance(value, tuple) else value


def _converter(kind: Any) -> Convert:
    if isinstance(kind, StrawberryOptional):
        return _converter(kind.of_type)
    if isinstance(kind, StrawberryList):
        return _list(_converter(kind.of_type))
    if has_object_definition(kind):
        return lambda value: view(kind, value)
    if getattr(kind, "__name__", "") == "JSON":
        return _json
    return None


_PLANS: dict[type, tuple[tuple[str, Convert], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Convert], ...]:
    """Per plain field of ``cls``: its name and how to convert a core value to it."""
    found = _PLANS.get(cls)
    if found is None:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        found = _PLANS[cls] = tuple(
            (field.python_name, _converter(field.type))
            for field in definition.fields
            if field.base_resolver is None and field.init
        )
    return found


def view(cls: type[T], *values: Any, **overrides: Any) -> T:
    """An instance of the GraphQL type ``cls`` holding the fields of the same name of the
    first of ``values`` that has them (``overrides`` first)."""
    arguments: dict[str, Any] = {}
    for name, convert in _plan(cls):
        if name in overrides:
            arguments[name] = overrides[name]
            continue
        source = values[0] if len(values) == 1 else next(v for v in values if hasattr(v, name))
        value = getattr(source, name)
        arguments[name] = value if value is None or convert is None else convert(value)
    return cls(**arguments)
