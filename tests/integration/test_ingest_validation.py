"""POST /v1/ingest: each event judged on its own, with the public rejection codes (SPEC §1)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    dumps_numbers,
    event,
    metric_definition,
    number,
    post_raw,
    search,
    sql_rows,
    sql_value,
    window,
)

MISSING = object()


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


def set_field(field: str, value: Any) -> dict[str, Any]:
    body = event("tx-bad")
    return without(body, field) if value is MISSING else {**body, field: value}


async def stored_tx_ids(env: Env, org_id: str | None = None) -> list[str]:
    rows = await sql_rows(
        env,
        "SELECT transaction_id FROM usage_events WHERE org_id = :org ORDER BY transaction_id",
        org=org_id or env.org_id,
    )
    return [r[0] for r in rows]


async def judge_one(env: Env, bad: dict[str, Any]) -> dict[str, Any]:
    """Send a good event, the bad one and another good one; return the report."""
    response = await env.ingest([event("good-1"), bad, event("good-2")])
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] == 2, report
    assert await stored_tx_ids(env) == ["good-1", "good-2"]
    assert len(report["rejected"]) == 1, report
    rejection = report["rejected"][0]
    assert rejection["index"] == 1
    assert isinstance(rejection["message"], str) and rejection["message"]
    return rejection


ID_FIELDS = ("transaction_id", "customer_id", "event_type")
BAD_ID_VALUES = [
    pytest.param(MISSING, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("x" * 129, id="129-chars"),
    pytest.param(12345, id="number"),
    pytest.param(None, id="null"),
    pytest.param(["a"], id="list"),
    pytest.param({"a": "b"}, id="object"),
    pytest.param(True, id="bool"),
]


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("value", BAD_ID_VALUES)
async def test_bad_identifier_field_is_invalid_field(env: Env, field: str, value: Any) -> None:
    rejection = await judge_one(env, set_field(field, value))
    assert rejection["code"] == "invalid_field"
    assert field in rejection["message"]
    if field != "transaction_id":
        expected_tx: Any = "tx-bad"
    else:
        expected_tx = value if isinstance(value, str) else None
    assert rejection["transaction_id"] == expected_tx


@pytest.mark.parametrize("field", ID_FIELDS)
async def test_identifier_of_128_chars_is_accepted(env: Env, field: str) -> None:
    long = "y" * 128
    body = event("tx-long") if field != "transaction_id" else event(long)
    body[field] = long
    response = await env.ingest([body])
    report = response.json()
    assert report["accepted"] == 1 and report["rejected"] == [], report
    found = await search(env, [body["transaction_id"]])
    stored = found[body["transaction_id"]]
    assert {
        "transaction_id": stored.transaction_id,
        "customer_id": stored.customer_ref,
        "event_type": stored.event_type,
    }[field] == long


BAD_TIMESTAMPS = [
    pytest.param(MISSING, id="missing"),
    pytest.param("", id="empty"),
    pytest.param(1775822400, id="epoch-number"),
    pytest.param("yesterday", id="words"),
    pytest.param("2026-04-10", id="date-only"),
    pytest.param("2026-04-10T11:00:00", id="no-offset"),
    pytest.param("2026-04-10T11:00Z", id="no-seconds"),
    pytest.param("10/04/2026 11:00:00Z", id="other-format"),
    pytest.param("2026-02-30T11:00:00Z", id="february-30"),
    pytest.param("2026-04-31T11:00:00Z", id="april-31"),
    pytest.param("2026-13-01T11:00:00Z", id="month-13"),
    pytest.param("2026-04-10T25:00:00Z", id="hour-25"),
    pytest.param("2026-04-10T11:61:00Z", id="minute-61"),
    pytest.param("2026-04-10T11:00:00+99:99", id="offset-out-of-range"),
    pytest.param("2026-04-10T11:00:00Z\n", id="trailing-newline"),
]


@pytest.mark.parametrize("value", BAD_TIMESTAMPS)
async def test_bad_timestamp_is_invalid_field(env: Env, value: Any) -> None:
    rejection = await judge_one(env, set_field("timestamp", value))
    assert rejection["code"] == "invalid_field"
    assert "timestamp" in rejection["message"]
    assert rejection["transaction_id"] == "tx-bad"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-04-10T11:00:00Z", NOW - timedelta(hours=1)),
        ("2026-04-10T13:00:00+02:00", NOW - timedelta(hours=1)),
        ("2026-04-10T06:30:00-04:30", NOW - timedelta(hours=1)),
        ("2026-04-10t11:00:00z", NOW - timedelta(hours=1)),
        ("2026-04-10T11:00:00.250Z", NOW - timedelta(hours=1) + timedelta(milliseconds=250)),
        ("2026-04-10T11:00:00.123456789Z", NOW - timedelta(hours=1, microseconds=-123456)),
        ("2026-04-10T11:00:00.1234567891Z", NOW - timedelta(hours=1, microseconds=-123456)),
    ],
)
async def test_rfc3339_forms_are_accepted_and_stored_in_utc(
    env: Env, sent: str, stored: Any
) -> None:
    response = await env.ingest([event("tx-ts", timestamp=sent)])
    report = response.json()
    assert report["accepted"] == 1, report
    assert (await search(env, ["tx-ts"]))["tx-ts"].timestamp == stored


@pytest.mark.parametrize(
    ("age", "code"),
    [
        (timedelta(days=34, seconds=1), "timestamp_too_old"),
        (timedelta(days=34, microseconds=1), "timestamp_too_old"),
        (timedelta(days=40), "timestamp_too_old"),
        (timedelta(days=400), "timestamp_too_old"),
        (timedelta(days=34), None),
        (timedelta(days=33, hours=23), None),
    ],
)
async def test_timestamp_older_than_34_days_is_rejected(
    env: Env, age: timedelta, code: str | None
) -> None:
    response = await env.ingest([event("old", timestamp=NOW - age)])
    report = response.json()
    if code is None:
        assert report["accepted"] == 1 and report["rejected"] == [], report
    else:
        assert report["accepted"] == 0
        assert [(r["index"], r["code"]) for r in report["rejected"]] == [(0, code)]
        assert await stored_tx_ids(env) == []


@pytest.mark.parametrize(
    ("ahead", "code"),
    [
        (timedelta(minutes=5), None),
        (timedelta(minutes=4, seconds=59), None),
        (timedelta(minutes=5, seconds=1), "timestamp_in_future"),
        (timedelta(minutes=5, microseconds=1), "timestamp_in_future"),
        (timedelta(hours=1), "timestamp_in_future"),
        (timedelta(days=365), "timestamp_in_future"),
    ],
)
async def test_timestamp_more_than_5_minutes_ahead_is_rejected(
    env: Env, ahead: timedelta, code: str | None
) -> None:
    response = await env.ingest([event("soon", timestamp=NOW + ahead)])
    report = response.json()
    if code is None:
        assert report["accepted"] == 1 and report["rejected"] == [], report
    else:
        assert report["accepted"] == 0
        assert [(r["index"], r["code"]) for r in report["rejected"]] == [(0, code)]
        assert await stored_tx_ids(env) == []


async def test_window_follows_the_injected_clock(env: Env) -> None:
    stamp = NOW - timedelta(days=30)
    env.clock.set(NOW + timedelta(days=5))
    first = (await env.ingest([event("a", timestamp=stamp)])).json()
    assert [r["code"] for r in first["rejected"]] == ["timestamp_too_old"]
    env.clock.set(NOW - timedelta(days=1))
    second = (await env.ingest([event("b", timestamp=NOW)])).json()
    assert [r["code"] for r in second["rejected"]] == ["timestamp_in_future"]


BAD_PROPERTIES = [
    pytest.param({"a": {"b": "c"}}, id="nested-object"),
    pytest.param({"a": ["x", "y"]}, id="list-value"),
    pytest.param({"a": []}, id="empty-list"),
    pytest.param({"ok": "1", "a": None}, id="null-value"),
    pytest.param("tokens=5", id="string"),
    pytest.param(["a", "b"], id="array"),
    pytest.param(5, id="number"),
    pytest.param(True, id="bool"),
    pytest.param({f"p{i}": "v" for i in range(101)}, id="101-properties"),
    pytest.param({"n" * 129: "v"}, id="name-129-chars"),
    pytest.param({"": "v"}, id="empty-name"),
    pytest.param({"long": "v" * 4097}, id="value-4097-chars"),
]


@pytest.mark.parametrize("properties", BAD_PROPERTIES)
async def test_properties_not_a_flat_object_of_scalars_is_rejected(
    env: Env, properties: Any
) -> None:
    rejection = await judge_one(env, event("tx-bad", properties=properties))
    assert rejection["code"] == "invalid_properties"
    assert rejection["transaction_id"] == "tx-bad"


async def test_missing_properties_mean_none(env: Env) -> None:
    response = await env.ingest([without(event("tx-np"), "properties")])
    assert response.json()["accepted"] == 1
    assert (await search(env, ["tx-np"]))["tx-np"].properties == {}


async def test_numbers_in_properties_are_stored_as_their_exact_decimal_string(env: Env) -> None:
    props = {
        "tenth": number("0.1"),
        "long": number("1234567890.123456789"),
        "trailing": number("1.50"),
        "int": number("42"),
        "negative": number("-3.25"),
        "big": number("123456789012345678901234567890"),
        "text": "0.1",
    }
    response = await post_raw(env, dumps_numbers([event("tx-num", properties=props)]))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    expected = {
        "tenth": "0.1",
        "long": "1234567890.123456789",
        "trailing": "1.50",
        "int": "42",
        "negative": "-3.25",
        "big": "123456789012345678901234567890",
        "text": "0.1",
    }
    assert (await search(env, ["tx-num"]))["tx-num"].properties == expected
    raw = await sql_value(
        env, "SELECT properties FROM usage_events WHERE transaction_id = 'tx-num'"
    )
    assert "1234567890.123456789" in str(raw)
    assert "0.1000" not in str(raw)


async def test_exact_number_feeds_a_sum_metric_exactly(env: Env) -> None:
    metric = await add_metric(env, metric_definition("Amount", "sum", key="amount"))
    customer = await add_customer(env, "Exact", aliases=["exact"])
    values = ["0.1", "0.2", "1234567890.123456789"]
    batch = [
        event(f"tx-{i}", customer="exact", properties={"amount": number(v)})
        for i, v in enumerate(values)
    ]
    response = await post_raw(env, dumps_numbers(batch))
    assert response.json()["accepted"] == 3
    found = await window(env, customer, [metric], NOW - timedelta(days=1), NOW)
    [(group, partial)] = found[metric.id].items()
    assert group == ()
    assert str(partial.sum.normalize()) == "1234567890.423456789"
    assert partial.sum == Decimal("1234567890.423456789")


async def test_one_bad_event_never_rejects_the_batch(env: Env) -> None:
    batch = [
        event("ok-0"),
        without(event("x"), "transaction_id"),
        event("old", timestamp=NOW - timedelta(days=35)),
        event("ok-3"),
        event("future", timestamp=NOW + timedelta(minutes=6)),
        event("nested", properties={"a": {"b": 1}}),
        event("ok-6"),
        event("badts", timestamp="2026-04-10T11:00:00"),
        event("ok-8"),
    ]
    response = await env.ingest(batch)
    assert response.status_code == 200
    report = response.json()
    assert report["accepted"] == 4
    assert [(r["index"], r["transaction_id"], r["code"]) for r in report["rejected"]] == [
        (1, None, "invalid_field"),
        (2, "old", "timestamp_too_old"),
        (4, "future", "timestamp_in_future"),
        (5, "nested", "invalid_properties"),
        (7, "badts", "invalid_field"),
    ]
    assert await stored_tx_ids(env) == ["ok-0", "ok-3", "ok-6", "ok-8"]


async def test_a_rejected_event_does_not_reserve_its_transaction_id(env: Env) -> None:
    first = (await env.ingest([event("retry", timestamp="not a time")])).json()
    assert [r["code"] for r in first["rejected"]] == ["invalid_field"]
    second = (await env.ingest([event("retry")])).json()
    assert second["accepted"] == 1 and second["duplicates"] == []


async def test_report_has_exactly_the_documented_shape(env: Env) -> None:
    metric = await add_metric(env, metric_definition("Calls", "count", event_types=["api_call"]))
    assert metric.id
    await add_customer(env, "Known", aliases=["known"])
    batch = [
        event("a", customer="known"),
        event("a", customer="known"),
        event("b", customer="known", timestamp="nope"),
        event("c", customer="stranger"),
        event("d", customer="known", event_type="page_view"),
    ]
    response = await env.ingest(batch)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    report = response.json()
    assert set(report) == {"accepted", "duplicates", "rejected", "warnings"}
    assert report["accepted"] == 3
    assert report["duplicates"] == ["a"]
    [rejected] = report["rejected"]
    assert set(rejected) == {"index", "transaction_id", "code", "message"}
    assert (rejected["index"], rejected["transaction_id"], rejected["code"]) == (
        2,
        "b",
        "invalid_field",
    )
    assert [(w["index"], w["code"]) for w in report["warnings"]] == [
        (3, "unknown_customer"),
        (4, "no_matching_metric"),
    ]
    for warning in report["warnings"]:
        assert {"index", "code"} <= set(warning)
        assert isinstance(warning["index"], int)


async def test_a_fully_rejected_batch_is_still_a_200_report(env: Env) -> None:
    response = await env.ingest([event("a", timestamp="x"), event("b", properties=[1])])
    assert response.status_code == 200
    report = response.json()
    assert report["accepted"] == 0 and report["duplicates"] == [] and report["warnings"] == []
    assert [r["code"] for r in report["rejected"]] == ["invalid_field", "invalid_properties"]
    assert await stored_tx_ids(env) == []


async def test_extra_top_level_fields_are_ignored(env: Env) -> None:
    # Metronome's body may carry fields Meterline does not use; they must not reject.
    response = await env.ingest([event("tx-extra", extra_field="whatever")])
    assert response.json()["accepted"] == 1
