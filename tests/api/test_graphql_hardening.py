"""GraphQL hardening: malformed requests, wrong types, over-deep and over-wide operations
get errors with ``extensions.code`` (never a 500); expected domain failures name the
offending field; production serves no introspection, no GraphiQL and no suggestions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.settings import Settings
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from resolvers.graphql.app import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tests.api.support import auth, data, failure, gql, post
from tests.conftest import START, Backend, Env


def errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The GraphQL errors of a rejected request: a JSON body whose every error has a code,
    with no data, and no 5xx."""
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json"), (
        response.status_code,
        response.headers["content-type"],
        response.text,
    )
    body = response.json()
    assert body.get("data") is None, body
    errors: list[dict[str, Any]] = body["errors"]
    assert errors, body
    for error in errors:
        assert error["extensions"]["code"], error
    return errors


def codes_of(response: httpx.Response) -> set[str]:
    return {error["extensions"]["code"] for error in errors_of(response)}


CREATE_ALERT = (
    "mutation($threshold: Decimal!) { createAlert(input: "
    '{name: "a", alertType: SPEND_THRESHOLD_REACHED, threshold: $threshold}) { id } }'
)
ALERT_TYPE = (
    "mutation($type: AlertType!) { createAlert(input: "
    '{name: "a", alertType: $type, threshold: "1"}) { id } }'
)
USAGE = (
    'query($from: DateTime!) { customer(id: "cus_x") { usage(billableMetricId: "bm_x", '
    'startingAt: $from, endingBefore: "2026-04-02T00:00:00Z") { quantity } } }'
)


def literal_alert(threshold: str) -> str:
    return (
        'mutation { createAlert(input: {name: "a", alertType: SPEND_THRESHOLD_REACHED, '
        f"threshold: {threshold}}}) {{ id }} }}"
    )


@dataclass(frozen=True)
class Case:
    query: str
    variables: dict[str, Any]
    code: str = "BAD_REQUEST"
    field: str | None = None
    says: str = ""


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: organization {{ id }}" for i in range(count)) + " }"


MALFORMED = {
    "syntax error": Case("{ organization { id ", {}, says="Syntax Error"),
    "unknown field": Case("{ organisation { id } }", {}),
    "unknown argument": Case("{ customers(frist: 2) { nodes { id } } }", {}),
    "scalar with a selection": Case("{ organization { id { id } } }", {}),
    "decimal as a JSON float": Case(CREATE_ALERT, {"threshold": 12.5}, says="strings"),
    "decimal as a JSON number literal": Case(literal_alert("12.5"), {}, says="strings"),
    "decimal as letters": Case(CREATE_ALERT, {"threshold": "abc"}, says="abc"),
    "decimal as a literal of letters": Case(literal_alert('"abc"'), {}, says="abc"),
    "decimal NaN": Case(CREATE_ALERT, {"threshold": "NaN"}),
    "decimal Infinity": Case(CREATE_ALERT, {"threshold": "Infinity"}),
    "decimal as a boolean": Case(CREATE_ALERT, {"threshold": True}),
    "date-time without offset": Case(USAGE, {"from": "2026-04-01T00:00:00"}, says="offset"),
    "date-time literal without offset": Case(
        '{ customer(id: "cus_x") { usage(billableMetricId: "bm_x", '
        'startingAt: "2026-04-01T00:00:00", endingBefore: "2026-04-02T00:00:00Z") { quantity } } }',
        {},
        says="offset",
    ),
    "date-time as words": Case(USAGE, {"from": "yesterday"}),
    "date-time as a number": Case(USAGE, {"from": 1775001600}),
    "unknown enum value": Case(ALERT_TYPE, {"type": "SPEND"}),
    "unknown enum literal": Case(
        'mutation { createAlert(input: {name: "a", alertType: SPEND, threshold: "1"}) { id } }', {}
    ),
    "string for an Int": Case('{ customers(first: "5") { nodes { id } } }', {}),
    "Int overflow": Case("{ customers(first: 99999999999) { nodes { id } } }", {}),
    "missing variable": Case("query($id: ID!) { customer(id: $id) { id } }", {}),
    "null for a non-null input": Case(CREATE_ALERT, {"threshold": None}),
    "first: 1000": Case("{ customers(first: 1000) { nodes { id } } }", {}, "VALIDATION", "first"),
    "first: 0": Case("{ products(first: 0) { nodes { id } } }", {}, "VALIDATION", "first"),
    "garbage after cursor": Case(
        '{ customers(after: "not-a-cursor") { nodes { id } } }', {}, "VALIDATION", "after"
    ),
    # The schema has no cycles, so nothing deeper than the limit is otherwise valid: the
    # depth limiter must still say why it refuses.
    "over-deep": Case(
        "{ organization " + "{ id " * (MAX_DEPTH + 5) + "}" * (MAX_DEPTH + 6),
        {},
        says=f"exceeds maximum operation depth of {MAX_DEPTH}",
    ),
    "too many aliases": Case(aliases(MAX_ALIASES + 1), {}, says="aliases"),
    "too many tokens": Case(
        "{ organization { " + "id " * MAX_TOKENS + "} }", {}, says=f"more than {MAX_TOKENS} tokens"
    ),
    "fragment cycle": Case(
        "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }", {}
    ),
    "subscription": Case("subscription { organization { id } }", {}),
    "two operations and no operationName": Case(
        'query A { organization { id } } mutation B { revokeApiKey(id: "key_x") { id } }', {}
    ),
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_operations_get_coded_errors(env: Env, name: str) -> None:
    case = MALFORMED[name]
    errors = errors_of(await post(env, case.query, env.admin_key, **case.variables))
    assert {error["extensions"]["code"] for error in errors} == {case.code}, errors
    if case.field is not None:
        assert [error["extensions"].get("field") for error in errors] == [case.field]
    assert any(case.says in error["message"] for error in errors), errors


def search(count: int) -> str:
    """searchEvents over ``count`` transaction ids: about ``count`` + 8 tokens."""
    ids = " ".join(f'"tx{i}"' for i in range(count))
    return f"{{ searchEvents(transactionIds: [{ids}]) {{ transactionId }} }}"


async def test_the_limits_still_admit_operations_just_within_them(env: Env) -> None:
    widest = await data(env, aliases(MAX_ALIASES), env.read_key)
    assert len(widest) == MAX_ALIASES
    deepest = (
        "{ customers { nodes { draftInvoices { lines { tiers { amount } } } "
        "balances { ledger { amount } } } } }"
    )
    assert await data(env, deepest, env.read_key) == {"customers": {"nodes": []}}
    # Just under the token limit, the operation reaches its resolver (which allows at most
    # 100 transaction ids); just over it, the parser refuses it.
    under = await failure(env, search(MAX_TOKENS - 20), alone=True)
    assert under == {"code": "VALIDATION", "field": "transaction_ids"}
    over = errors_of(await post(env, search(MAX_TOKENS), env.admin_key))
    assert [e["extensions"]["code"] for e in over] == ["BAD_REQUEST"]
    assert f"more than {MAX_TOKENS} tokens" in over[0]["message"]


GRAPHQL_JSON = {"content-type": "application/json"}

TRANSPORT: dict[str, dict[str, Any]] = {
    "non-JSON body": {"content": b"{not json", "headers": GRAPHQL_JSON},
    "empty body": {"content": b"", "headers": GRAPHQL_JSON},
    "a JSON array (batch)": {"json": [{"query": "{ organization { id } }"}]},
    "a JSON string": {"json": "{ organization { id } }"},
    "no query": {"json": {"variables": {}}},
    "query not a string": {"json": {"query": 5}},
    "variables not an object": {"json": {"query": "{ organization { id } }", "variables": [1]}},
    "unknown operationName": {
        "json": {"query": "query A { organization { id } }", "operationName": "B"}
    },
    "unsupported content type": {
        "content": b"{ organization { id } }",
        "headers": {"content-type": "text/plain"},
    },
}


@pytest.mark.parametrize("name", list(TRANSPORT))
async def test_malformed_requests_get_coded_errors(env: Env, name: str) -> None:
    request = dict(TRANSPORT[name])
    headers = {**auth(env.admin_key), **request.pop("headers", {})}
    response = await env.client.post("/graphql", headers=headers, **request)
    assert 400 <= response.status_code < 500
    assert codes_of(response) == {"BAD_REQUEST"}


async def test_a_mutation_over_get_is_refused_with_a_code_and_not_run(env: Env) -> None:
    before = await data(env, "{ apiKeys { id scopes revokedAt } }", env.admin_key)
    (read_key,) = [k["id"] for k in before["apiKeys"] if k["scopes"] == ["read"]]
    mutation = f'mutation {{ revokeApiKey(id: "{read_key}") {{ id }} }}'
    response = await env.client.get(
        "/graphql", params={"query": mutation}, headers=auth(env.admin_key)
    )
    assert await data(env, "{ apiKeys { id scopes revokedAt } }", env.admin_key) == before
    assert 400 <= response.status_code < 500
    assert codes_of(response) == {"BAD_REQUEST"}


async def test_a_query_over_get_works(env: Env) -> None:
    response = await env.client.get(
        "/graphql", params={"query": "{ organization { id } }"}, headers=auth(env.admin_key)
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"organization": {"id": env.org_id}}}


PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }"
CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
CONTRACT = "mutation($input: CreateContractInput!) { createContract(input: $input) { id } }"
TOKEN = (
    "mutation($input: CreateCustomerTokenInput!) { createCustomerToken(input: $input) { token } }"
)
API_KEY = "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }"


async def test_domain_failures_carry_their_code_and_field(env: Env) -> None:
    customer = (await data(env, CUSTOMER, env.admin_key, input={"name": "C"}))["createCustomer"]
    expected = [
        (PRODUCT, {"name": "", "type": "FIXED"}, "VALIDATION", "name"),
        (CUSTOMER, {"name": "C", "uniquenessKey": "k" * 129}, "VALIDATION", "uniqueness_key"),
        (TOKEN, {"customerId": customer["id"], "ttlSeconds": 0}, "VALIDATION", "ttl_seconds"),
        (API_KEY, {"scopes": ["root"]}, "VALIDATION", "scopes"),
        (API_KEY, {"scopes": ["read"], "environment": "staging"}, "VALIDATION", "environment"),
    ]
    for query, value, code, field in expected:
        extensions = await failure(env, query, alone=True, input=value)
        assert extensions == {"code": code, "field": field}, value
    search = "query($tx: [String!]!) { searchEvents(transactionIds: $tx) { transactionId } }"
    empty = await failure(env, search, alone=True, tx=[])
    assert empty == {"code": "VALIDATION", "field": "transaction_ids"}


async def test_a_reused_uniqueness_key_is_a_conflict_naming_the_key(env: Env) -> None:
    keyed = {"name": "Setup", "type": "FIXED", "uniquenessKey": "setup-v1"}
    assert await data(env, PRODUCT, env.admin_key, input=keyed)
    assert await failure(env, PRODUCT, alone=True, input=keyed) == {
        "code": "CONFLICT",
        "field": "uniqueness_key",
    }
    listed = await data(env, "{ products { nodes { name } } }", env.read_key)
    assert listed["products"]["nodes"] == [{"name": "Setup"}]


async def test_a_missing_reference_is_not_found_naming_the_field(env: Env) -> None:
    customer = (await data(env, CUSTOMER, env.admin_key, input={"name": "C"}))["createCustomer"]
    terms = {
        "customerId": customer["id"],
        "rateCardId": "rc_missing",
        "startingAt": "2026-04-01T00:00:00Z",
    }
    assert await failure(env, CONTRACT, alone=True, input=terms) == {
        "code": "NOT_FOUND",
        "field": "rate_card_id",
    }


@dataclass
class App:
    client: httpx.AsyncClient
    key: str


@pytest.fixture
async def production(backend: Backend) -> AsyncIterator[App]:
    """The app as deployed: ``env=production``."""
    clock = FixedClock(START)
    settings = Settings(
        env="production", database_url=backend.database_url, redis_url=backend.redis_url
    )
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        async with app.state.services.db.write() as conn:
            org_id = await get_or_create_organization(conn, "Production", clock())
            _, key = await create_api_key(conn, org_id, ["admin"], clock())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield App(client, key)


INTROSPECTION = ["{ __schema { types { name } } }", '{ __type(name: "Query") { fields { name } } }']


async def test_production_refuses_introspection(production: App, env: Env) -> None:
    for query in INTROSPECTION:
        refused = errors_of(await post(env, query, production.key, client=production.client))
        assert {error["extensions"]["code"] for error in refused} == {"BAD_REQUEST"}
        assert all("introspection" in error["message"] for error in refused)
        assert "errors" not in await gql(env, query, env.admin_key)  # development answers
    typename = await post(env, "{ __typename }", production.key, client=production.client)
    assert typename.json() == {"data": {"__typename": "Query"}}


HTML = {"accept": "text/html"}


async def test_graphiql_is_served_in_development_only(production: App, env: Env) -> None:
    development = await env.client.get("/graphql", headers=HTML)
    assert development.status_code == 200
    assert development.headers["content-type"].startswith("text/html")
    assert "graphiql" in development.text.lower()
    deployed = await production.client.get("/graphql", headers=HTML)
    assert deployed.status_code == 404
    assert "graphiql" not in deployed.text.lower()


# Operations that make GraphQL suggest a name ("Did you mean …?"), which would let anyone
# map the schema that introspection hides.
SUGGESTIVE: dict[str, tuple[str, dict[str, Any]]] = {
    "field": ("{ organisation { id } }", {}),
    "nested field": ("{ customers { nodes { nmae } } }", {}),
    "argument": ("{ customers(frist: 2) { nodes { id } } }", {}),
    "type": ("query($x: Strin) { organization { id } }", {}),
    "input field literal": (
        'mutation { createProduct(input: {nmae: "a", type: FIXED}) { id } }',
        {},
    ),
    "input field variable": (PRODUCT, {"input": {"nmae": "a", "type": "FIXED"}}),
}


@pytest.mark.parametrize("name", list(SUGGESTIVE))
async def test_production_errors_suggest_nothing(production: App, env: Env, name: str) -> None:
    query, variables = SUGGESTIVE[name]
    suggested = errors_of(await post(env, query, env.admin_key, **variables))
    assert any("Did you mean" in error["message"] for error in suggested)  # development does
    deployed = errors_of(
        await post(env, query, production.key, client=production.client, **variables)
    )
    assert {error["extensions"]["code"] for error in deployed} == {"BAD_REQUEST"}
    assert [e["message"] for e in deployed if "Did you mean" in e["message"]] == []
