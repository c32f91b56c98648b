"""Billable metrics: which events match, and how rollup partials become quantities.

An event's contribution to a metric is a :class:`RollupPartial` keyed by the event's
*rollup group values*: the values of every property named in any of the metric's compound
group keys. Partials are mergeable (commutative, associative), so the storage layer may sum
them per hour bucket and again per window; any partition of the events gives the same
quantity. Quantities are exact ``Decimal``; nothing here rounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property

from billing.errors import ValidationError
from billing.money import EXACT

GroupValues = tuple[tuple[str, str], ...]
"""Sorted ``(property, value)`` pairs: hashable, canonical group values."""


VALUE_LIMIT = 30
"""Aggregation values must have at most 30 digits on each side of the decimal point."""


class AggregationType(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE = "unique"
    LATEST = "latest"


VALUE_AGGREGATIONS = frozenset({AggregationType.SUM, AggregationType.MAX, AggregationType.LATEST})


@dataclass(frozen=True)
class EventTypeFilter:
    in_values: tuple[str, ...] | None = None
    not_in_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PropertyFilter:
    name: str
    exists: bool | None = None
    in_values: tuple[str, ...] | None = None
    not_in_values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MetricDefinition:
    id: str
    name: str
    aggregation_type: AggregationType
    event_type_filter: EventTypeFilter = EventTypeFilter()
    property_filters: tuple[PropertyFilter, ...] = ()
    aggregation_key: str | None = None
    group_keys: tuple[tuple[str, ...], ...] = ()

    @cached_property
    def rollup_keys(self) -> tuple[str, ...]:
        """Sorted union of every property named in the compound group keys."""
        return tuple(sorted({key for compound in self.group_keys for key in compound}))


@dataclass(frozen=True)
class UsageEvent:
    transaction_id: str
    customer_id: str
    event_type: str
    timestamp: datetime
    properties: Mapping[str, str]


@dataclass(frozen=True)
class LatestValue:
    """The value of the event with the greatest ``(timestamp, transaction_id)``."""

    timestamp: datetime
    transaction_id: str
    value: Decimal

    def newer_than(self, other: LatestValue) -> bool:
        return (self.timestamp, self.transaction_id) > (other.timestamp, other.transaction_id)


@dataclass(frozen=True)
class RollupPartial:
    """What a set of matching events contributes: exact, mergeable figures."""

    count: int = 0
    sum: Decimal = Decimal(0)
    max: Decimal | None = None
    latest: LatestValue | None = None
    distinct: frozenset[str] = field(default_factory=frozenset)

    def merge(self, other: RollupPartial) -> RollupPartial:
        """Combine two partials; commutative and associative, so order never matters."""
        if self.max is None:
            maximum = other.max
        elif other.max is None:
            maximum = self.max
        else:
            maximum = EXACT.max(self.max, other.max)
        if self.latest is None:
            latest = other.latest
        elif other.latest is None or not other.latest.newer_than(self.latest):
            latest = self.latest
        else:
            latest = other.latest
        return RollupPartial(
            count=self.count + other.count,
            sum=EXACT.add(self.sum, other.sum),
            max=maximum,
            latest=latest,
            distinct=self.distinct | other.distinct,
        )


@dataclass(frozen=True)
class MatchResult:
    """One event judged against one metric; ``reason`` says why it did not match."""

    metric_id: str
    matched: bool
    reason: str | None
    group_values: GroupValues
    partial: RollupPartial | None


def parse_decimal(text: str) -> Decimal | None:
    """The finite ``Decimal`` in ``text`` within :data:`VALUE_LIMIT`, or None."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if value and (value.adjusted() >= VALUE_LIMIT or exponent < -VALUE_LIMIT):
        return None
    return value


def _filter_failure(metric: MetricDefinition, event: UsageEvent) -> str | None:
    etf = metric.event_type_filter
    if etf.in_values is not None and event.event_type not in etf.in_values:
        return f"event_type {event.event_type!r} is not in {list(etf.in_values)}"
    if etf.not_in_values is not None and event.event_type in etf.not_in_values:
        return f"event_type {event.event_type!r} is excluded"
    for pf in metric.property_filters:
        value = event.properties.get(pf.name)
        if value is None:
            if pf.exists or pf.in_values is not None:
                return f"property {pf.name!r} is missing"
            continue
        if pf.exists is False:
            return f"property {pf.name!r} must be absent"
        if pf.in_values is not None and value not in pf.in_values:
            return f"property {pf.name!r} value {value!r} is not in {list(pf.in_values)}"
        if pf.not_in_values is not None and value in pf.not_in_values:
            return f"property {pf.name!r} value {value!r} is excluded"
    return None


def match_event(metric: MetricDefinition, event: UsageEvent) -> MatchResult:
    """Judge ``event`` against ``metric`` and return its contribution.

    For sum/max/latest the ``aggregation_key`` value must be a finite decimal; otherwise the
    event does not match and the reason says so (it is never silently counted as zero).
    The partial carries the latest value only for ``latest`` metrics.
    """
    group_values: GroupValues = tuple(
        (key, event.properties[key]) for key in metric.rollup_keys if key in event.properties
    )
    reason = _filter_failure(metric, event)
    if reason is not None:
        return MatchResult(metric.id, False, reason, group_values, None)
    kind = metric.aggregation_type
    key = metric.aggregation_key
    if kind is AggregationType.COUNT:
        return MatchResult(metric.id, True, None, group_values, RollupPartial(count=1))
    raw = event.properties.get(key) if key is not None else None
    if raw is None:
        return MatchResult(metric.id, False, f"property {key!r} is missing", group_values, None)
    if kind is AggregationType.UNIQUE:
        partial = RollupPartial(count=1, distinct=frozenset({raw}))
        return MatchResult(metric.id, True, None, group_values, partial)
    value = parse_decimal(raw)
    if value is None:
        reason = f"property {key!r} value {raw[:40]!r} is not a decimal within ±1e{VALUE_LIMIT}"
        return MatchResult(metric.id, False, reason, group_values, None)
    latest = (
        LatestValue(event.timestamp, event.transaction_id, value)
        if kind is AggregationType.LATEST
        else None  # only ``latest`` metrics read it
    )
    partial = RollupPartial(count=1, sum=value, max=value, latest=latest)
    return MatchResult(metric.id, True, None, group_values, partial)


def project(group_values: GroupValues, keys: Sequence[str]) -> GroupValues:
    """Keep only the pairs whose property is in ``keys`` (order stays canonical)."""
    wanted = set(keys)
    return tuple(pair for pair in group_values if pair[0] in wanted)


def quantity(aggregation_type: AggregationType, partial: RollupPartial) -> Decimal:
    """The metric's quantity for the events behind ``partial``; exact, never rounded.

    An empty max or latest is 0.
    """
    if aggregation_type is AggregationType.COUNT:
        return Decimal(partial.count)
    if aggregation_type is AggregationType.SUM:
        return partial.sum
    if aggregation_type is AggregationType.MAX:
        return partial.max if partial.max is not None else Decimal(0)
    if aggregation_type is AggregationType.UNIQUE:
        return Decimal(len(partial.distinct))
    return partial.latest.value if partial.latest is not None else Decimal(0)


def merge_by_group(
    partials: Iterable[tuple[GroupValues, RollupPartial]], keys: Sequence[str]
) -> dict[GroupValues, RollupPartial]:
    """Merge partials whose group values agree on ``keys``."""
    merged: dict[GroupValues, RollupPartial] = {}
    for group_values, partial in partials:
        target = project(group_values, keys)
        previous = merged.get(target)
        merged[target] = partial if previous is None else previous.merge(partial)
    return merged


def aggregate(
    metric: MetricDefinition,
    partials: Iterable[tuple[GroupValues, RollupPartial]],
    keys: Sequence[str],
) -> dict[GroupValues, Decimal]:
    """Quantity per group values projected onto ``keys`` (``[]`` gives one total)."""
    merged = merge_by_group(partials, keys)
    return {group: quantity(metric.aggregation_type, p) for group, p in merged.items()}


def _require_exists_filter(metric: MetricDefinition, name: str, field_name: str) -> None:
    if not any(pf.name == name and pf.exists for pf in metric.property_filters):
        raise ValidationError(
            field_name, f"{name!r} must be named in property_filters with exists: true"
        )


def validate_metric(metric: MetricDefinition) -> None:
    """Raise :class:`ValidationError` naming the first offending field of ``metric``."""
    if not metric.name.strip():
        raise ValidationError("name", "must not be empty")
    for index, pf in enumerate(metric.property_filters):
        if not pf.name:
            raise ValidationError(f"property_filters[{index}].name", "must not be empty")
    if metric.aggregation_type in VALUE_AGGREGATIONS or (
        metric.aggregation_type is AggregationType.UNIQUE
    ):
        if not metric.aggregation_key:
            raise ValidationError(
                "aggregation_key", f"is required for {metric.aggregation_type.value}"
            )
        _require_exists_filter(metric, metric.aggregation_key, "aggregation_key")
    for i, compound in enumerate(metric.group_keys):
        if not compound:
            raise ValidationError(f"group_keys[{i}]", "must name at least one property")
        for j, key in enumerate(compound):
            _require_exists_filter(metric, key, f"group_keys[{i}][{j}]")
