"""Customers through GraphQL (SPEC §5): ingest aliases, updates that claim stored events,
custom fields, and the Stripe billing provider link."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import (
    CREATE_CUSTOMER,
    amounts,
    code_of,
    customer,
    data,
    draft,
    failure,
    llm,
    send,
    shop,
)
from tests.conftest import Env

CUSTOMER = """
query($id: ID!) {
  customer(id: $id) {
    id name ingestAliases customFields stripeCustomerId stripeCollectionMethod createdAt
    archivedAt
  }
}"""
UPDATE = """
mutation($input: UpdateCustomerInput!) {
  updateCustomer(input: $input) { id name ingestAliases customFields }
}"""
LINK = """
mutation($input: BillingProviderInput!) {
  setBillingProvider(input: $input) { id stripeCustomerId stripeCollectionMethod }
}"""
LIST = "{ customers { nodes { id name } } }"


async def test_create_with_aliases_and_custom_fields(env: Env) -> None:
    created = await data(
        env,
        CREATE_CUSTOMER,
        input={
            "name": " Acme ",
            "ingestAliases": ["acme-prod", "acme-dev"],
            "customFields": {"tier": "gold", "seats": 5, "tags": ["a"]},
        },
    )
    found = created["createCustomer"]
    assert found["name"] == "Acme"
    assert sorted(found["ingestAliases"]) == ["acme-dev", "acme-prod"]
    assert found["customFields"] == {"tier": "gold", "seats": 5, "tags": ["a"]}
    assert (found["stripeCustomerId"], found["stripeCollectionMethod"]) == (None, None)
    assert found["createdAt"] == "2026-04-10T12:00:00Z"
    read = (await data(env, CUSTOMER, env.read_key, id=found["id"]))["customer"]
    assert read == {**found, "archivedAt": None}


async def test_events_sent_with_an_alias_or_the_id_count_on_the_customers_draft(
    env: Env,
) -> None:
    world = await shop(env, price="0.01")
    await data(env, UPDATE, input={"id": world.customer_id, "addIngestAliases": ["acme-dev"]})
    await send(
        env,
        llm("t1", "acme", 100),
        llm("t2", "acme-dev", 20),
        llm("t3", world.customer_id, 3),
        llm("t4", "somebody-else", 1000),
    )
    (line,) = (await draft(env, world.customer_id))["lines"]
    assert (line["quantity"], line["amount"]) == ("123", "1.23")


async def test_an_alias_names_one_live_customer_only(env: Env) -> None:
    first = await customer(env, "Acme", ["shared"])
    extensions = await failure(
        env, CREATE_CUSTOMER, input={"name": "Globex", "ingestAliases": ["own", "shared"]}
    )
    assert extensions["code"] == "CONFLICT"
    assert [c["id"] for c in (await data(env, LIST))["customers"]["nodes"]] == [first]

    second = await customer(env, "Globex", ["globex"])
    code = await code_of(env, UPDATE, input={"id": second, "addIngestAliases": ["shared"]})
    assert code == "CONFLICT"
    found = (await data(env, CUSTOMER, id=second))["customer"]
    assert found["ingestAliases"] == ["globex"]
    # a customer's own id is taken too: nobody else may claim it as an alias
    code = await code_of(env, UPDATE, input={"id": second, "addIngestAliases": [first]})
    assert code == "CONFLICT"


async def test_adding_an_alias_claims_events_that_named_it_before(env: Env) -> None:
    world = await shop(env, price="0.01")
    body = await send(env, llm("t1", "legacy-42", 500), llm("t2", "acme", 100))
    assert [w["code"] for w in body["warnings"]] == ["unknown_customer"]
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "1.00")]

    updated = await data(
        env,
        UPDATE,
        input={
            "id": world.customer_id,
            "name": "Acme Corp",
            "addIngestAliases": ["legacy-42"],
            "customFields": {"crm": "42"},
        },
    )
    assert updated["updateCustomer"] == {
        "id": world.customer_id,
        "name": "Acme Corp",
        "ingestAliases": ["acme", "legacy-42"],
        "customFields": {"crm": "42"},
    }
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "6.00")]
    # later events under the new alias count too
    await send(env, llm("t3", "legacy-42", 100))
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "7.00")]


async def test_an_update_keeps_the_fields_it_omits(env: Env) -> None:
    customer_id = await customer(env, "Acme", ["acme"], customFields={"tier": "gold"})
    updated = (await data(env, UPDATE, input={"id": customer_id}))["updateCustomer"]
    assert updated == {
        "id": customer_id,
        "name": "Acme",
        "ingestAliases": ["acme"],
        "customFields": {"tier": "gold"},
    }


@pytest.mark.parametrize("fields", [["a", "b"], "gold", 5, True])
async def test_custom_fields_must_be_a_json_object(env: Env, fields: Any) -> None:
    extensions = await failure(env, CREATE_CUSTOMER, input={"name": "Acme", "customFields": fields})
    assert extensions == {"code": "VALIDATION", "field": "custom_fields"}
    assert (await data(env, LIST))["customers"]["nodes"] == []
    customer_id = await customer(env, "Acme", customFields={"tier": "gold"})
    extensions = await failure(env, UPDATE, input={"id": customer_id, "customFields": fields})
    assert extensions == {"code": "VALIDATION", "field": "custom_fields"}
    found = (await data(env, CUSTOMER, id=customer_id))["customer"]
    assert found["customFields"] == {"tier": "gold"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Acme", "ingestAliases": [""]}, "ingest_aliases[0]"),
        ({"name": "Acme", "ingestAliases": ["ok", "y" * 129]}, "ingest_aliases[1]"),
        (
            {"name": "Acme", "stripeCustomerId": "cus_1", "stripeCollectionMethod": "wire"},
            "stripe_collection_method",
        ),
    ],
)
async def test_invalid_customers_name_the_field(
    env: Env, fields: dict[str, Any], field: str
) -> None:
    extensions = await failure(env, CREATE_CUSTOMER, input=fields)
    assert extensions == {"code": "VALIDATION", "field": field}
    assert (await data(env, LIST))["customers"]["nodes"] == []


async def test_invalid_updates_name_the_field_and_change_nothing(env: Env) -> None:
    customer_id = await customer(env, "Acme", ["acme"])
    extensions = await failure(env, UPDATE, input={"id": customer_id, "name": " "})
    assert extensions == {"code": "VALIDATION", "field": "name"}
    extensions = await failure(env, UPDATE, input={"id": customer_id, "addIngestAliases": [""]})
    assert extensions == {"code": "VALIDATION", "field": "ingest_aliases[0]"}
    found = (await data(env, CUSTOMER, id=customer_id))["customer"]
    assert (found["name"], found["ingestAliases"]) == ("Acme", ["acme"])
    assert await code_of(env, UPDATE, input={"id": "cus_nope", "name": "X"}) == "NOT_FOUND"


async def test_link_and_unlink_stripe(env: Env) -> None:
    customer_id = await customer(env, "Acme")
    linked = await data(
        env,
        LINK,
        input={
            "customerId": customer_id,
            "stripeCustomerId": "cus_Stripe1",
            "stripeCollectionMethod": "send_invoice",
        },
    )
    assert linked["setBillingProvider"] == {
        "id": customer_id,
        "stripeCustomerId": "cus_Stripe1",
        "stripeCollectionMethod": "send_invoice",
    }
    # the collection method defaults to charging automatically
    relinked = await data(
        env, LINK, input={"customerId": customer_id, "stripeCustomerId": "cus_Stripe2"}
    )
    assert relinked["setBillingProvider"]["stripeCollectionMethod"] == "charge_automatically"

    unlinked = await data(
        env,
        LINK,
        input={"customerId": customer_id, "stripeCustomerId": None, "stripeCollectionMethod": None},
    )
    assert unlinked["setBillingProvider"] == {
        "id": customer_id,
        "stripeCustomerId": None,
        "stripeCollectionMethod": None,
    }
    found = (await data(env, CUSTOMER, id=customer_id))["customer"]
    assert (found["stripeCustomerId"], found["stripeCollectionMethod"]) == (None, None)


async def test_an_unknown_collection_method_is_refused(env: Env) -> None:
    customer_id = await customer(env, "Acme")
    extensions = await failure(
        env,
        LINK,
        input={
            "customerId": customer_id,
            "stripeCustomerId": "cus_Stripe1",
            "stripeCollectionMethod": "carrier_pigeon",
        },
    )
    assert extensions == {"code": "VALIDATION", "field": "stripe_collection_method"}
    found = (await data(env, CUSTOMER, id=customer_id))["customer"]
    assert found["stripeCustomerId"] is None
    link = {"customerId": "cus_nope", "stripeCustomerId": "cus_Stripe1"}
    assert await code_of(env, LINK, input=link) == "NOT_FOUND"


async def test_customers_of_another_organization_are_not_found(env: Env) -> None:
    customer_id = await customer(env, "Acme", ["acme"])
    _, other_key = await env.new_org("Other")
    assert await code_of(env, CUSTOMER, other_key, id=customer_id) == "NOT_FOUND"
    code = await code_of(env, UPDATE, other_key, input={"id": customer_id, "name": "Mine"})
    assert code == "NOT_FOUND"
    assert (await data(env, LIST, other_key))["customers"]["nodes"] == []
    # aliases are per organization: the other one may use the same alias
    await data(env, CREATE_CUSTOMER, other_key, input={"name": "B", "ingestAliases": ["acme"]})


async def test_read_keys_cannot_write_customers(env: Env) -> None:
    code = await code_of(env, CREATE_CUSTOMER, env.read_key, input={"name": "Acme"})
    assert code == "FORBIDDEN"


async def test_re_adding_an_alias_the_customer_already_has_changes_nothing(env: Env) -> None:
    customer_id = await customer(env, "Acme", ["acme"])
    updated = await data(env, UPDATE, input={"id": customer_id, "addIngestAliases": ["acme"]})
    assert updated["updateCustomer"]["ingestAliases"] == ["acme"]
