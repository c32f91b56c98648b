"""Parsed and validated documents are cached per query text, schema and rules: a cached
verdict never leaks to another document, another schema (production refuses what
development answers) or another request's variables."""

from __future__ import annotations

from tests.api.support import data, post
from tests.api.test_graphql_hardening import (
    INTROSPECTION,
    MAX_DEPTH,
    App,
    codes_of,
    errors_of,
    production,
)
from tests.conftest import Env

__all__ = ["production"]  # the fixture, imported for the tests below

OVER_DEEP = "{ organization " + "{ id " * (MAX_DEPTH + 5) + "}" * (MAX_DEPTH + 6)
CUSTOMER = "query($id: ID!) { customer(id: $id) { id name } }"


async def test_a_refused_document_is_refused_every_time(env: Env) -> None:
    for _ in range(3):
        errors = errors_of(await post(env, OVER_DEEP, env.admin_key))
        assert any(f"maximum operation depth of {MAX_DEPTH}" in e["message"] for e in errors)
        assert await data(env, "{ organization { id } }", env.read_key)


async def test_a_cached_document_runs_with_each_request_s_variables(env: Env) -> None:
    names = {}
    for name in ("First", "Second"):
        created = await data(
            env,
            "mutation($name: String!) { createCustomer(input: {name: $name}) { id } }",
            env.admin_key,
            name=name,
        )
        names[created["createCustomer"]["id"]] = name
    for customer_id, name in names.items():
        found = await data(env, CUSTOMER, env.read_key, id=customer_id)
        assert found["customer"] == {"id": customer_id, "name": name}
    assert codes_of(await post(env, CUSTOMER, env.read_key, id="cus_missing")) == {"NOT_FOUND"}


async def test_each_schema_validates_with_its_own_rules(production: App, env: Env) -> None:
    for _ in range(2):
        for query in INTROSPECTION:
            assert "errors" not in (await post(env, query, env.admin_key)).json()
            refused = errors_of(await post(env, query, production.key, client=production.client))
            assert all("introspection" in error["message"] for error in refused)
