"""Metric matching and aggregation of rollup partials (SPEC §2)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.errors import ValidationError
from billing.metering import (
    AggregationType,
    EventTypeFilter,
    MetricDefinition,
    PropertyFilter,
    RollupPartial,
    UsageEvent,
    aggregate,
    match_event,
    merge_by_group,
    project,
    quantity,
    validate_metric,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def metric(kind: AggregationType, **kw: object) -> MetricDefinition:
    base: dict[str, object] = {
        "id": "m",
        "name": "M",
        "aggregation_type": kind,
        "event_type_filter": EventTypeFilter(in_values=("job",)),
        "property_filters": (PropertyFilter("v", exists=True), PropertyFilter("g", exists=True)),
        "aggregation_key": None if kind is AggregationType.COUNT else "v",
        "group_keys": (("g",),),
    }
    base.update(kw)
    return MetricDefinition(**base)  # type: ignore[arg-type]


def ev(tx: str, v: str = "1", g: str = "a", t: int = 0, etype: str = "job") -> UsageEvent:
    return UsageEvent(tx, "c", etype, T0 + timedelta(minutes=t), {"v": v, "g": g})


def test_event_type_and_property_filters_give_a_reason() -> None:
    m = metric(
        AggregationType.SUM,
        property_filters=(
            PropertyFilter("v", exists=True),
            PropertyFilter("g", exists=True),
            PropertyFilter("method", in_values=("POST",)),
            PropertyFilter("region", not_in_values=("eu",)),
            PropertyFilter("debug", exists=False),
        ),
    )
    base = {"v": "1", "g": "a", "method": "POST"}

    def reason(etype: str = "job", **props: str) -> str | None:
        return match_event(m, UsageEvent("t", "c", etype, T0, {**base, **props})).reason

    assert reason() is None
    assert "event_type" in (reason(etype="other") or "")
    assert "not in" in (reason(method="GET") or "")
    assert "excluded" in (reason(region="eu") or "")
    assert "absent" in (reason(debug="1") or "")
    assert "missing" in (match_event(m, UsageEvent("t", "c", "job", T0, {"g": "a"})).reason or "")


def test_not_in_event_types_and_absent_not_in_property_pass() -> None:
    m = metric(
        AggregationType.COUNT,
        event_type_filter=EventTypeFilter(not_in_values=("noise",)),
        property_filters=(PropertyFilter("region", not_in_values=("eu",)),),
        group_keys=(),
    )
    assert match_event(m, UsageEvent("t", "c", "job", T0, {})).matched
    assert not match_event(m, UsageEvent("t", "c", "noise", T0, {})).matched


def test_value_aggregations_need_a_decimal() -> None:
    for kind in (AggregationType.SUM, AggregationType.MAX, AggregationType.LATEST):
        result = match_event(metric(kind), ev("t", v="lots"))
        assert not result.matched and "not a decimal" in (result.reason or "")
        assert not match_event(metric(kind), ev("t", v="NaN")).matched
        assert not match_event(metric(kind), ev("t", v="Infinity")).matched


def test_aggregation_key_missing_without_filter_is_a_non_match() -> None:
    m = metric(AggregationType.UNIQUE, property_filters=())
    result = match_event(m, UsageEvent("t", "c", "job", T0, {}))
    assert not result.matched and "missing" in (result.reason or "")


def partials(m: MetricDefinition, events: list[UsageEvent]) -> list:
    found = [match_event(m, e) for e in events]
    return [(r.group_values, r.partial) for r in found if r.partial is not None]


def test_each_aggregation_type() -> None:
    events = [ev("a", "5", t=1), ev("b", "9", t=3), ev("c", "5", t=2), ev("d", "2", g="b", t=0)]
    expect = {
        AggregationType.COUNT: {(("g", "a"),): Decimal(3), (("g", "b"),): Decimal(1)},
        AggregationType.SUM: {(("g", "a"),): Decimal(19), (("g", "b"),): Decimal(2)},
        AggregationType.MAX: {(("g", "a"),): Decimal(9), (("g", "b"),): Decimal(2)},
        AggregationType.UNIQUE: {(("g", "a"),): Decimal(2), (("g", "b"),): Decimal(1)},
        AggregationType.LATEST: {(("g", "a"),): Decimal(9), (("g", "b"),): Decimal(2)},
    }
    for kind, by_group in expect.items():
        m = metric(kind)
        assert aggregate(m, partials(m, events), ["g"]) == by_group
        assert aggregate(m, partials(m, events), []) == {
            (): quantity(kind, merged_total(m, events))
        }


def merged_total(m: MetricDefinition, events: list[UsageEvent]) -> RollupPartial:
    return merge_by_group(partials(m, events), [])[()]


def test_latest_ties_break_on_greatest_transaction_id() -> None:
    m = metric(AggregationType.LATEST)
    events = [ev("tx-b", "7", t=5), ev("tx-a", "8", t=5), ev("tx-c", "1", t=4)]
    assert aggregate(m, partials(m, events), []) == {(): Decimal(7)}


def test_empty_partial_quantities_are_zero() -> None:
    for kind in AggregationType:
        assert quantity(kind, RollupPartial()) == 0


def test_project_keeps_canonical_order() -> None:
    assert project((("a", "1"), ("b", "2"), ("c", "3")), ["c", "a"]) == (("a", "1"), ("c", "3"))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": " "}, "name"),
        ({"aggregation_key": None}, "aggregation_key"),
        ({"property_filters": (PropertyFilter("g", exists=True),)}, "aggregation_key"),
        ({"property_filters": (PropertyFilter("v", exists=True),)}, "group_keys[0][0]"),
        ({"group_keys": ((),)}, "group_keys[0]"),
        ({"property_filters": (PropertyFilter(""),)}, "property_filters[0].name"),
    ],
)
def test_validation_names_the_offending_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_metric(metric(AggregationType.SUM, **kw))
    assert raised.value.field == field


def test_valid_metrics_pass_validation() -> None:
    for kind in AggregationType:
        validate_metric(metric(kind))


values = st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False)
event_lists = st.lists(
    st.tuples(values, st.sampled_from("abc"), st.integers(0, 500), st.sampled_from(["job", "x"])),
    max_size=40,
)


@given(event_lists, st.data())
def test_any_partition_of_events_gives_the_same_quantity(raw: list, data: st.DataObject) -> None:
    events = [ev(f"t{i}", str(v), g, t, et) for i, (v, g, t, et) in enumerate(raw)]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    for kind in AggregationType:
        m = metric(kind)
        whole = aggregate(m, partials(m, events), ["g"])
        pieces, start = [], 0
        for cut in [*cuts, len(events)]:
            chunk = events[start:cut]
            # each piece is pre-merged, as an hourly rollup row would be
            pieces.extend(merge_by_group(partials(m, chunk), ["g"]).items())
            start = max(start, cut)
        assert aggregate(m, pieces, ["g"]) == whole
