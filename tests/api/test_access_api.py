"""API keys, customer tokens and the audit log through GraphQL (SPEC §9)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.support import (
    APRIL,
    CREATE_CUSTOMER,
    admin_key_id,
    code_of,
    contract,
    customer,
    data,
    drafts,
    failure,
    gql,
    llm,
    metric,
    product,
    rate,
    rate_card,
    send,
    shop,
    walk,
)
from tests.conftest import START, Env

CREATE_KEY = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    secret
    apiKey { id name displayPrefix scopes createdAt lastUsedAt revokedAt }
  }
}"""
KEYS = "{ apiKeys { id name displayPrefix scopes createdAt lastUsedAt revokedAt } }"
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"
TOKEN = """
mutation($input: CreateCustomerTokenInput!) {
  createCustomerToken(input: $input) { token customerId expiresAt }
}"""
ORGANIZATION = "{ organization { id } }"
CUSTOMER = "query($id: ID!) { customer(id: $id) { id name } }"
AUDIT = """
query($first: Int!, $after: String, $object: String) {
  auditLog(first: $first, after: $after, objectId: $object) {
    nodes { id actor action objectKind objectId changes createdAt }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def new_key(env: Env, scopes: list[str], **fields: Any) -> Any:
    found = await data(env, CREATE_KEY, input={"scopes": scopes, **fields})
    return found["createApiKey"]


async def test_a_new_key_shows_its_secret_once_and_works_for_its_scopes(env: Env) -> None:
    created = await new_key(env, ["read"], name="dashboard")
    secret, key = created["secret"], created["apiKey"]
    assert secret.startswith("ml_live_") and len(secret) > 40
    assert secret.startswith(key["displayPrefix"]) and len(key["displayPrefix"]) < len(secret)
    assert (key["name"], key["scopes"], key["revokedAt"]) == ("dashboard", ["read"], None)
    assert key["createdAt"] == "2026-04-10T12:00:00Z"

    assert (await data(env, ORGANIZATION, secret))["organization"]["id"] == env.org_id
    assert await code_of(env, CREATE_CUSTOMER, secret, input={"name": "X"}) == "FORBIDDEN"
    assert (await env.ingest([llm("t1", "acme", 1)], key=secret)).status_code == 403

    listed = (await data(env, KEYS))["apiKeys"]
    assert key["id"] in [k["id"] for k in listed]
    assert secret not in str(listed)
    assert len(listed) == 4  # the fixture's admin, ingest and read keys, and this one


async def test_a_test_environment_key_for_ingest(env: Env) -> None:
    world = await shop(env)
    created = await new_key(env, ["ingest"], environment="test")
    assert created["secret"].startswith("ml_test_")
    response = await env.ingest([llm("t1", "acme", 100)], key=created["secret"])
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert (await drafts(env, world.customer_id))[0]["total"] == "1.00"
    assert await code_of(env, ORGANIZATION, created["secret"]) == "FORBIDDEN"
    (key,) = [k for k in (await data(env, KEYS))["apiKeys"] if k["id"] == created["apiKey"]["id"]]
    assert key["lastUsedAt"] == "2026-04-10T12:00:00Z"


async def test_a_key_records_when_graphql_last_used_it(env: Env) -> None:
    created = await new_key(env, ["read"])
    assert created["apiKey"]["lastUsedAt"] is None
    env.clock.set(START + timedelta(hours=1))
    await data(env, ORGANIZATION, created["secret"])
    (key,) = [k for k in (await data(env, KEYS))["apiKeys"] if k["id"] == created["apiKey"]["id"]]
    assert key["lastUsedAt"] == "2026-04-10T13:00:00Z"


async def test_an_admin_key_can_do_everything(env: Env) -> None:
    created = await new_key(env, ["admin", "ingest"])
    assert sorted(created["apiKey"]["scopes"]) == ["admin", "ingest"]
    await data(env, CREATE_CUSTOMER, created["secret"], input={"name": "Acme"})
    await data(env, KEYS, created["secret"])
    response = await env.ingest([llm("t1", "acme", 1)], key=created["secret"])
    assert response.status_code == 200


async def test_a_revoked_key_stops_working(env: Env) -> None:
    reader = await new_key(env, ["read"])
    ingester = await new_key(env, ["ingest"])
    assert (await data(env, ORGANIZATION, reader["secret"]))["organization"]
    env.clock.set(START + timedelta(minutes=5))
    for created in (reader, ingester):
        revoked = (await data(env, REVOKE, id=created["apiKey"]["id"]))["revokeApiKey"]
        assert revoked == {"id": created["apiKey"]["id"], "revokedAt": "2026-04-10T12:05:00Z"}
    assert await code_of(env, ORGANIZATION, reader["secret"]) == "UNAUTHENTICATED"
    assert (await env.ingest([llm("t1", "acme", 1)], key=ingester["secret"])).status_code == 401
    listed = {k["id"]: k for k in (await data(env, KEYS))["apiKeys"]}
    assert listed[reader["apiKey"]["id"]]["revokedAt"] == "2026-04-10T12:05:00Z"
    assert await code_of(env, REVOKE, id=reader["apiKey"]["id"]) == "NOT_FOUND"
    assert await code_of(env, REVOKE, id="key_nope") == "NOT_FOUND"
    _, other_key = await env.new_org("Other")
    assert await code_of(env, REVOKE, other_key, id=await admin_key_id(env)) == "NOT_FOUND"
    assert (await data(env, ORGANIZATION))["organization"]  # the admin key still works


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"scopes": ["superuser"]}, "scopes"),
        ({"scopes": ["read", "write"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["read"], "environment": "prod"}, "environment"),
    ],
)
async def test_an_invalid_key_request_names_the_field(
    env: Env, fields: dict[str, Any], field: str
) -> None:
    assert await failure(env, CREATE_KEY, input=fields) == {"code": "VALIDATION", "field": field}
    assert len((await data(env, KEYS))["apiKeys"]) == 3


async def test_only_admin_keys_manage_keys(env: Env) -> None:
    for key in (env.read_key, env.ingest_key):
        assert await code_of(env, KEYS, key) == "FORBIDDEN"
        assert await code_of(env, CREATE_KEY, key, input={"scopes": ["admin"]}) == "FORBIDDEN"


# --- customer tokens ----------------------------------------------------------------------


async def test_a_customer_token_sees_only_its_customer(env: Env) -> None:
    world = await shop(env, price="0.01")
    other = await customer(env, "Globex", ["globex"])
    await send(env, llm("t1", "acme", 100))
    minted = (await data(env, TOKEN, input={"customerId": world.customer_id}))[
        "createCustomerToken"
    ]
    token = minted["token"]
    assert minted["customerId"] == world.customer_id
    assert minted["expiresAt"] == "2026-04-10T13:00:00Z"  # one hour by default

    assert (await data(env, CUSTOMER, token, id=world.customer_id))["customer"] == {
        "id": world.customer_id,
        "name": "Acme",
    }
    (invoice,) = await drafts(env, world.customer_id, key=token)
    assert invoice["total"] == "1.00"
    assert await code_of(env, CUSTOMER, token, id=other) == "NOT_FOUND"
    assert await code_of(env, CUSTOMER, token, id="cus_nope") == "NOT_FOUND"
    for query in ("{ customers { nodes { id } } }", "{ products { nodes { id } } }", KEYS):
        assert await code_of(env, query, token) == "FORBIDDEN"
    assert await code_of(env, CREATE_CUSTOMER, token, input={"name": "X"}) == "FORBIDDEN"
    contract_query = "query($id: ID!) { contract(id: $id) { id } }"
    assert await code_of(env, contract_query, token, id=world.contract_id) == "FORBIDDEN"

    env.clock.set(START + timedelta(hours=1))
    assert await code_of(env, CUSTOMER, token, id=world.customer_id) == "UNAUTHENTICATED"


@pytest.mark.parametrize("ttl", [0, -5, 86401])
async def test_a_customer_token_lives_one_second_to_one_day(env: Env, ttl: int) -> None:
    customer_id = await customer(env)
    extensions = await failure(env, TOKEN, input={"customerId": customer_id, "ttlSeconds": ttl})
    assert extensions == {"code": "VALIDATION", "field": "ttl_seconds"}


@pytest.mark.parametrize(("ttl", "expires"), [(1, "12:00:01"), (86400, "2026-04-11T12:00:00")])
async def test_a_customer_token_at_the_ttl_bounds(env: Env, ttl: int, expires: str) -> None:
    customer_id = await customer(env)
    minted = await data(env, TOKEN, input={"customerId": customer_id, "ttlSeconds": ttl})
    assert expires in minted["createCustomerToken"]["expiresAt"]


async def test_customer_tokens_are_minted_by_admins_for_known_customers(env: Env) -> None:
    customer_id = await customer(env)
    assert await code_of(env, TOKEN, env.read_key, input={"customerId": customer_id}) == (
        "FORBIDDEN"
    )
    assert await code_of(env, TOKEN, input={"customerId": "cus_nope"}) == "NOT_FOUND"
    _, other_key = await env.new_org("Other")
    assert await code_of(env, TOKEN, other_key, input={"customerId": customer_id}) == ("NOT_FOUND")
    minted = (await data(env, TOKEN, input={"customerId": customer_id}))["createCustomerToken"]
    assert await code_of(env, TOKEN, minted["token"], input={"customerId": customer_id}) == (
        "FORBIDDEN"
    )


# --- the audit log ------------------------------------------------------------------------


async def _every_kind_of_mutation(env: Env) -> list[tuple[str, str, str]]:
    """Run one mutation of each kind, a second apart; returns (action, kind, object id)."""
    done: list[tuple[str, str, str]] = []
    seconds = iter(range(1000))

    def tick() -> None:
        env.clock.set(START + timedelta(seconds=next(seconds)))

    async def run(query: str, action: str, kind: str, **variables: Any) -> Any:
        tick()
        found = (await data(env, query, **variables))[action]
        object_id = found.get("id") or found.get("customerId") or found["apiKey"]["id"]
        done.append((action, kind, object_id))
        return found

    tick()
    metric_id = await metric(env)
    done.append(("createBillableMetric", "billable_metric", metric_id))
    tick()
    product_id = await product(env, "Tokens", billableMetricId=metric_id)
    done.append(("createProduct", "product", product_id))
    tick()
    card_id = await rate_card(env, rate(product_id))
    done.append(("createRateCard", "rate_card", card_id))
    tick()
    customer_id = await customer(env, "Acme")
    done.append(("createCustomer", "customer", customer_id))
    tick()
    contract_id = (await contract(env, customer_id, card_id))["id"]
    done.append(("createContract", "contract", contract_id))
    await run(
        "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { id } }",
        "updateProduct",
        "product",
        input={"id": product_id, "name": "Tokens v2"},
    )
    await run(
        "mutation($input: EditContractInput!) { editContract(input: $input) { id } }",
        "editContract",
        "contract",
        input={
            "contractId": contract_id,
            "addCredits": [{"name": "C", "amount": "1", "startingAt": APRIL,
                            "endingBefore": "2026-05-01T00:00:00Z"}],
        },
    )  # fmt: skip
    key = await run(CREATE_KEY, "createApiKey", "api_key", input={"scopes": ["read"]})
    await run(REVOKE, "revokeApiKey", "api_key", id=key["apiKey"]["id"])
    await run(TOKEN, "createCustomerToken", "customer_token", input={"customerId": customer_id})
    await run(
        "mutation($id: ID!) { archiveContract(id: $id) { id } }",
        "archiveContract",
        "contract",
        id=contract_id,
    )
    await run(
        "mutation($id: ID!) { archiveProduct(id: $id) { id } }",
        "archiveProduct",
        "product",
        id=product_id,
    )
    return done


async def test_the_audit_log_lists_every_mutation_newest_first(env: Env) -> None:
    done = await _every_kind_of_mutation(env)
    # a failed mutation changes nothing and is not recorded
    await failure(env, CREATE_CUSTOMER, input={"name": ""})
    actor = await admin_key_id(env)
    found = (await data(env, AUDIT, first=100, after=None, object=None))["auditLog"]
    entries = found["nodes"]
    assert found["pageInfo"]["hasNextPage"] is False
    assert [(e["action"], e["objectKind"], e["objectId"]) for e in entries] == done[::-1]
    assert {e["actor"] for e in entries} == {actor}
    times = [e["createdAt"] for e in entries]
    assert times == sorted(times, reverse=True) and times[0] == "2026-04-10T12:00:11Z"
    by_action = {e["action"]: e for e in entries}
    assert by_action["updateProduct"]["changes"]["name"] == "Tokens v2"
    assert by_action["createCustomer"]["changes"]["name"] == "Acme"
    assert by_action["createApiKey"]["changes"]["scopes"] == ["read"]
    assert by_action["editContract"]["changes"]["add_credits"][0]["amount"] == "1"
    assert by_action["archiveContract"]["changes"]["archived_at"].startswith("2026-04-10T12:00:10")


async def test_the_audit_log_never_holds_a_secret(env: Env) -> None:
    created = await new_key(env, ["read"])
    customer_id = await customer(env)
    minted = (await data(env, TOKEN, input={"customerId": customer_id}))["createCustomerToken"]
    found = await data(env, AUDIT, first=100, after=None, object=None)
    assert created["secret"] not in str(found)
    assert minted["token"] not in str(found)


async def test_the_audit_log_pages_and_filters_by_object(env: Env) -> None:
    done = await _every_kind_of_mutation(env)
    pages = await walk(env, "auditLog", 5, "objectId action")
    assert len(done) == 12 and [len(page) for page in pages] == [5, 5, 2]
    assert [(e["action"], e["objectId"]) for page in pages for e in page] == [
        (action, object_id) for action, _, object_id in done[::-1]
    ]
    contract_id = next(object_id for action, _, object_id in done if action == "createContract")
    found = (await data(env, AUDIT, first=100, after=None, object=contract_id))["auditLog"]
    assert [e["action"] for e in found["nodes"]] == [
        "archiveContract",
        "editContract",
        "createContract",
    ]
    first = (await data(env, AUDIT, first=2, after=None, object=contract_id))["auditLog"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await data(env, AUDIT, first=2, after=first["pageInfo"]["endCursor"], object=contract_id)
    assert [e["action"] for e in rest["auditLog"]["nodes"]] == ["createContract"]
    assert rest["auditLog"]["pageInfo"]["hasNextPage"] is False
    nothing = await data(env, AUDIT, first=10, after=None, object="nope")
    assert nothing["auditLog"]["nodes"] == []


async def test_mutations_at_the_same_instant_are_listed_newest_first(env: Env) -> None:
    """The clock does not move between these mutations (as under a fixed clock, or two
    writes within one clock tick): the log must still list the later one first."""
    created = [await customer(env, f"Customer {index}") for index in range(8)]
    found = (await data(env, AUDIT, first=100, after=None, object=None))["auditLog"]
    assert [e["objectId"] for e in found["nodes"]] == created[::-1]


async def test_the_audit_log_is_for_admins_of_the_organization(env: Env) -> None:
    await customer(env)
    assert await code_of(env, AUDIT, env.read_key, first=10, after=None, object=None) == (
        "FORBIDDEN"
    )
    _, other_key = await env.new_org("Other")
    theirs = await data(env, AUDIT, other_key, first=10, after=None, object=None)
    assert theirs["auditLog"]["nodes"] == []
    body = await gql(env, AUDIT, first=101, after=None, object=None)
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "first"}


async def test_a_customer_tokens_own_actions_name_the_customer(env: Env) -> None:
    world = await shop(env)
    minted = (await data(env, TOKEN, input={"customerId": world.customer_id}))[
        "createCustomerToken"
    ]
    alert = await data(
        env,
        """mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }""",
        minted["token"],
        input={
            "name": "Budget",
            "alertType": "SPEND_THRESHOLD_REACHED",
            "threshold": "50",
            "customerId": world.customer_id,
        },
    )
    found = await data(env, AUDIT, first=1, after=None, object=alert["createAlert"]["id"])
    (entry,) = found["auditLog"]["nodes"]
    assert entry["action"] == "createAlert"
    assert world.customer_id in entry["actor"]
