"""POST /v1/ingest at the HTTP level: auth, body limits, gzip, JSON errors, never a 500."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from models.store.api_keys import create_api_key, revoke_api_key
from tests.conftest import Env
from tests.integration.support import (
    NOW,
    add_customer,
    add_metric,
    auth,
    event,
    metric_definition,
    post_gzip,
    post_raw,
    search,
    sql_value,
)

MIB = 1024 * 1024


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


async def event_count(env: Env) -> int:
    return int(await sql_value(env, "SELECT COUNT(*) FROM usage_events"))


# --- 401 / 403 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty-header"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-without-key"),
        pytest.param({"Authorization": "Bearer   "}, id="bearer-blank"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-scheme"),
        pytest.param({"Authorization": "Token ml_live_abc"}, id="token-scheme"),
        pytest.param({"Authorization": "Bearer ml_live_" + "A" * 43}, id="unknown-key"),
        pytest.param({"Authorization": "Bearer sk_live_12345"}, id="foreign-prefix"),
        pytest.param({"Authorization": "Bearer ml_live_" + "x" * 5000}, id="huge-key"),
    ],
)
async def test_missing_or_unknown_key_is_401(env: Env, headers: dict[str, str]) -> None:
    response = await env.client.post("/v1/ingest", json=[event("a")], headers=headers)
    assert_json_error(response, 401)
    assert await event_count(env) == 0


async def test_key_with_wrong_scheme_but_valid_secret_is_401(env: Env) -> None:
    headers = {"Authorization": f"Basic {env.ingest_key}"}
    response = await env.client.post("/v1/ingest", json=[event("a")], headers=headers)
    assert_json_error(response, 401)


async def test_revoked_key_is_401(env: Env) -> None:
    async with env.write() as conn:
        key_id, secret = await create_api_key(conn, env.org_id, ["ingest"], env.clock())
    assert (await env.ingest([event("before")], key=secret)).status_code == 200
    async with env.write() as conn:
        assert await revoke_api_key(conn, env.org_id, key_id, env.clock())
    response = await env.ingest([event("after")], key=secret)
    assert_json_error(response, 401)
    assert set((await search(env, ["before", "after"])).keys()) == {"before"}


async def test_read_only_key_is_403(env: Env) -> None:
    response = await env.ingest([event("a")], key=env.read_key)
    assert_json_error(response, 403)
    assert await event_count(env) == 0


async def test_admin_key_without_ingest_scope_is_403(env: Env) -> None:
    response = await env.ingest([event("a")], key=env.admin_key)
    body = assert_json_error(response, 403)
    assert "ingest" in body["error"]["message"]
    assert await event_count(env) == 0


async def test_key_with_admin_and_ingest_scopes_ingests(env: Env) -> None:
    _, key = await env.new_org("Both scopes")
    assert (await env.ingest([event("a")], key=key)).json()["accepted"] == 1


async def test_auth_is_checked_before_the_body(env: Env) -> None:
    response = await post_raw(env, b"not json", key="ml_live_" + "B" * 43)
    assert_json_error(response, 401)
    response = await post_raw(env, b"not json", key=env.read_key)
    assert_json_error(response, 403)


# --- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty-body"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'[{"transaction_id": "a"', id="truncated-json"),
        pytest.param(b'[{"transaction_id": "\xff\xfe"}]', id="invalid-utf8"),
        pytest.param(b'{"transaction_id": "a"}', id="object-not-array"),
        pytest.param(b'"events"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"42", id="number"),
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'[{"transaction_id": "a"}, 5]', id="element-number"),
        pytest.param(b'[{"transaction_id": "a"}, "x"]', id="element-string"),
        pytest.param(b'[{"transaction_id": "a"}, null]', id="element-null"),
        pytest.param(b'[{"transaction_id": "a"}, []]', id="element-array"),
        pytest.param(b'[{"properties": {"n": NaN}}]', id="nan"),
        pytest.param(b'[{"properties": {"n": Infinity}}]', id="infinity"),
        pytest.param(b'[{"properties": {"n": -Infinity}}]', id="minus-infinity"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-nesting"),
    ],
)
async def test_body_that_is_not_an_array_of_event_objects_is_400(env: Env, body: bytes) -> None:
    response = await post_raw(env, body)
    assert_json_error(response, 400)
    assert await event_count(env) == 0


async def test_101_events_is_400_and_100_is_accepted(env: Env) -> None:
    too_many = [event(f"tx-{i}") for i in range(101)]
    assert_json_error(await env.ingest(too_many), 400)
    assert await event_count(env) == 0
    response = await env.ingest(too_many[:100])
    assert response.status_code == 200
    assert response.json()["accepted"] == 100
    assert await event_count(env) == 100


async def test_nan_next_to_good_events_rejects_the_body_not_stores_part(env: Env) -> None:
    body = json.dumps([event("good")])[:-1] + ', {"transaction_id": "n", "properties": {"v": NaN}}]'
    assert_json_error(await post_raw(env, body.encode()), 400)
    assert await event_count(env) == 0


async def test_corrupt_gzip_is_400(env: Env) -> None:
    response = await post_raw(env, b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
    assert_json_error(response, 400)


async def test_gzip_declared_but_plain_body_is_400(env: Env) -> None:
    body = json.dumps([event("a")]).encode()
    response = await post_raw(env, body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400, response.text
    assert await event_count(env) == 0


# --- 413 -------------------------------------------------------------------------------


def padded_batch(size: int) -> bytes:
    """A valid batch of one event whose JSON is exactly ``size`` bytes."""
    base = json.dumps([event("big", properties={"pad": ""})]).encode()
    return json.dumps([event("big", properties={"pad": "p" * (size - len(base))})]).encode()


async def test_body_over_1_mib_is_413(env: Env) -> None:
    response = await post_raw(env, padded_batch(MIB + 1))
    body = assert_json_error(response, 413)
    assert body["error"]["code"]
    assert await event_count(env) == 0


async def test_body_of_exactly_1_mib_is_not_413(env: Env) -> None:
    response = await post_raw(env, padded_batch(MIB))
    # the single pad value is longer than a property may be: the event is rejected, not 413
    assert response.status_code == 200, response.text
    assert response.json()["rejected"][0]["code"] == "invalid_properties"


async def test_streamed_body_over_1_mib_without_content_length_is_413(env: Env) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'[{"transaction_id": "s", "properties": {"pad": "'
        for _ in range(40):
            yield b"z" * 65536
        yield b'"}}]'

    response = await post_raw(env, chunks())
    assert_json_error(response, 413)
    assert await event_count(env) == 0


async def test_gzip_bomb_is_413(env: Env) -> None:
    bomb = gzip.compress(b"[" + b" " * (20 * MIB) + b"]", compresslevel=9)
    assert len(bomb) < 64 * 1024
    response = await post_raw(env, bomb, headers={"Content-Encoding": "gzip"})
    assert_json_error(response, 413)


async def test_gzip_inflating_just_past_1_mib_is_413(env: Env) -> None:
    response = await post_gzip(env, padded_batch(MIB + 1))
    assert_json_error(response, 413)
    assert await event_count(env) == 0


async def test_gzip_body_is_accepted(env: Env) -> None:
    batch = [event(f"gz-{i}", properties={"n": str(i)}) for i in range(100)]
    response = await post_gzip(env, json.dumps(batch).encode())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 100
    found = await search(env, ["gz-0", "gz-99"])
    assert found["gz-99"].properties == {"n": "99"}


# --- never a 500 -----------------------------------------------------------------------


async def test_nul_character_in_an_identifier_is_reported_not_a_500(env: Env) -> None:
    body = json.dumps([event("good-1"), event("nul\u0000tx"), event("good-2")]).encode()
    response = await post_raw(env, body)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["accepted"] + len(report["rejected"]) == 3, report
    stored = await search(env, ["good-1", "good-2"])
    assert set(stored) == {"good-1", "good-2"}


async def test_lone_surrogate_in_an_identifier_is_reported_not_a_500(env: Env) -> None:
    body = b'[{"transaction_id": "good-1", "customer_id": "c", "event_type": "t", '
    body += b'"timestamp": "2026-04-10T11:00:00Z"}, '
    body += b'{"transaction_id": "bad\\ud800", "customer_id": "c", "event_type": "t", '
    body += b'"timestamp": "2026-04-10T11:00:00Z"}]'
    response = await post_raw(env, body)
    assert response.status_code in (200, 400), response.text
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 200:
        assert response.json()["accepted"] >= 1
        assert "good-1" in await search(env, ["good-1"])


async def test_nul_character_in_a_property_is_not_a_500(env: Env) -> None:
    response = await env.ingest([event("p-nul", properties={"k": "a\u0000b"}), event("p-ok")])
    assert response.status_code == 200, response.text
    assert "p-ok" in await search(env, ["p-ok"])


@pytest.mark.parametrize("value", ["1e999999999", "1E-999999999", "9" * 200 + "e100000"])
async def test_extreme_decimal_in_a_summed_property_is_not_a_500(env: Env, value: str) -> None:
    """A value Decimal can parse but no column can hold must not fail the whole batch."""
    await add_metric(env, metric_definition("Tokens", "sum", key="tokens"))
    await add_customer(env, "Big", aliases=["big"])
    batch = [
        event("normal", customer="big", properties={"tokens": "5"}),
        event("extreme", customer="big", properties={"tokens": value}),
        event("extreme-2", customer="big", properties={"tokens": value}),
    ]
    response = await env.ingest(batch)
    assert response.status_code == 200, response.text
    assert "normal" in await search(env, ["normal"])


async def test_unsupported_method_is_not_a_500(env: Env) -> None:
    response = await env.client.get("/v1/ingest", headers=auth(env.ingest_key))
    assert response.status_code == 405


async def test_accepted_events_are_committed_before_the_response(env: Env) -> None:
    await add_customer(env, "Durable", aliases=["durable"])
    response = await env.ingest([event("d-1", customer="durable", timestamp=NOW - timedelta(1))])
    assert response.json()["accepted"] == 1
    # a fresh connection from the pool sees it: it is committed, not pending
    count = await sql_value(env, "SELECT COUNT(*) FROM usage_events WHERE transaction_id = 'd-1'")
    assert count == 1


async def test_a_wrong_method_or_path_is_a_json_error(env: Env) -> None:
    wrong_method = assert_json_error(
        await env.client.get("/v1/ingest", headers=auth(env.ingest_key)), 405
    )
    assert wrong_method["error"]["code"] == "method_not_allowed"
    assert (await env.client.get("/v1/ingest")).headers["allow"] == "POST"
    missing = assert_json_error(await env.client.post("/v1/ingests", json=[]), 404)
    assert missing["error"]["code"] == "not_found"
