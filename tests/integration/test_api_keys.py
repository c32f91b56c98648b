"""API keys (SPEC §9): prefixed random secrets, stored hashed, scoped, revocable, last use."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from billing.errors import ValidationError
from models.store.api_keys import api_keys, authenticate, create_api_key, revoke_api_key
from tests.conftest import Env
from tests.integration.support import event, search, sql_rows


async def key_row(env: Env, key_id: str) -> dict:
    [row] = await sql_rows(env, "SELECT * FROM api_keys WHERE id = :id", id=key_id)
    return dict(row._mapping)


async def test_keys_are_prefixed_random_and_never_stored_in_plaintext(env: Env) -> None:
    made = []
    async with env.write() as conn:
        for scopes in (["ingest"], ["read"], ["admin", "ingest"]):
            made.append(await create_api_key(conn, env.org_id, scopes, env.clock()))
    secrets = [secret for _, secret in made] + [env.admin_key, env.ingest_key, env.read_key]
    assert all(s.startswith("ml_live_") for s in secrets)
    assert len(set(secrets)) == len(secrets)
    assert all(len(s) >= len("ml_live_") + 32 for s in secrets)
    table = await sql_rows(env, "SELECT * FROM api_keys")
    assert len(table) == 6
    stored_text = " ".join(str(value) for row in table for value in row)
    for secret in secrets:
        assert secret not in stored_text
        assert secret[len("ml_live_") :] not in stored_text
        assert secret[-20:] not in stored_text


async def test_test_environment_keys_have_their_own_prefix_and_work(env: Env) -> None:
    async with env.write() as conn:
        _, secret = await create_api_key(
            conn, env.org_id, ["ingest"], env.clock(), environment="test"
        )
    assert secret.startswith("ml_test_")
    assert (await env.ingest([event("via-test-key")], key=secret)).json()["accepted"] == 1


async def test_unknown_scope_is_refused(env: Env) -> None:
    with pytest.raises(ValidationError, match="scopes"):
        async with env.write() as conn:
            await create_api_key(conn, env.org_id, ["superuser"], env.clock())
    with pytest.raises(ValidationError, match="scopes"):
        async with env.write() as conn:
            await create_api_key(conn, env.org_id, [], env.clock())


async def test_revoked_key_no_longer_authenticates(env: Env) -> None:
    async with env.write() as conn:
        key_id, secret = await create_api_key(conn, env.org_id, ["ingest"], env.clock())
    async with env.read() as conn:
        assert (await authenticate(conn, secret, env.clock())) is not None
    async with env.write() as conn:
        assert await revoke_api_key(conn, env.org_id, key_id, env.clock())
        assert not await revoke_api_key(conn, env.org_id, key_id, env.clock())
    async with env.read() as conn:
        assert (await authenticate(conn, secret, env.clock())) is None
    response = await env.ingest([event("after-revoke")], key=secret)
    assert response.status_code == 401
    assert response.json()["error"]["code"]
    assert await search(env, ["after-revoke"]) == {}
    # the other keys of the organization still work
    assert (await env.ingest([event("still-fine")])).status_code == 200


async def test_a_key_cannot_be_revoked_through_another_organization(env: Env) -> None:
    other_org, _ = await env.new_org("Intruder")
    async with env.write() as conn:
        key_id, secret = await create_api_key(conn, env.org_id, ["ingest"], env.clock())
        assert not await revoke_api_key(conn, other_org, key_id, env.clock())
    assert (await env.ingest([event("x")], key=secret)).status_code == 200


async def last_used(env: Env, key_id: str) -> datetime | None:
    async with env.read() as conn:
        query = select(api_keys.c.last_used_at).where(api_keys.c.id == key_id)
        return (await conn.execute(query)).scalar_one()


async def test_last_used_at_is_set_on_use(env: Env) -> None:
    async with env.write() as conn:
        key_id, secret = await create_api_key(conn, env.org_id, ["ingest"], env.clock())
    assert await last_used(env, key_id) is None
    start = env.clock()
    assert (await env.ingest([event("u-1")], key=secret)).status_code == 200
    assert await last_used(env, key_id) == start
    env.clock.set(start + timedelta(hours=3))
    assert (await env.ingest([event("u-2")], key=secret)).status_code == 200
    assert await last_used(env, key_id) == start + timedelta(hours=3)
    # the other keys of the organization were not used
    assert await last_used(env, await id_of(env, env.read_key)) is None


async def id_of(env: Env, secret: str) -> str:
    async with env.read() as conn:
        principal = await authenticate(conn, secret, env.clock())
    assert principal is not None
    return principal.key_id
