"""Products, rate cards and rates through GraphQL (SPEC §3, §4), uniqueness keys (§0) and
paginated lists."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.api.support import (
    APRIL,
    CREATE_CONTRACT,
    CREATE_CUSTOMER,
    CREATE_METRIC,
    CREATE_PRODUCT,
    CREATE_RATE_CARD,
    PRICE,
    TOKENS_METRIC,
    amounts,
    code_of,
    contract,
    customer,
    data,
    draft,
    drafts,
    failure,
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

PRODUCTS = """
query($all: Boolean!) { products(includeArchived: $all) { nodes { id name archivedAt } } }"""
UPDATE = "mutation($input: UpdateProductInput!) { updateProduct(input: $input) { id name } }"
ARCHIVE = "mutation($id: ID!) { archiveProduct(id: $id) { id name archivedAt } }"
ADD_RATES = f"""
mutation($input: AddRatesInput!) {{
  addRates(input: $input) {{ id rates {{ id productId startingAt {PRICE} }} }}
}}"""
RATE_CARD = f"""
query($id: ID!) {{
  rateCard(id: $id) {{
    id name currency
    rates {{ id productId startingAt endingBefore entitled pricingGroupValues {PRICE} }}
  }}
}}"""
M = "<the metric>"
REGIONAL = {
    "groupKeys": [["model", "region"], ["user"]],
    "propertyFilters": [
        {"name": name, "exists": True} for name in ("tokens", "model", "region", "user")
    ],
}


def by_id(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda item: str(item["id"]))


async def test_each_product_type_is_created_and_listed(env: Env) -> None:
    metric_id = await metric(env, **REGIONAL)
    usage = await data(
        env,
        CREATE_PRODUCT,
        input={
            "name": "Tokens",
            "type": "USAGE",
            "billableMetricId": metric_id,
            "pricingGroupKey": ["model"],
            "presentationGroupKey": ["region"],
        },
    )
    usage = usage["createProduct"]
    assert usage["type"] == "USAGE" and usage["billableMetricId"] == metric_id
    assert (usage["pricingGroupKey"], usage["presentationGroupKey"]) == (["model"], ["region"])
    ids = [usage["id"]]
    for name, kind in (("Seats", "SUBSCRIPTION"), ("Setup", "FIXED")):
        created = (await data(env, CREATE_PRODUCT, input={"name": name, "type": kind}))[
            "createProduct"
        ]
        assert (created["name"], created["type"], created["billableMetricId"]) == (name, kind, None)
        ids.append(created["id"])
    composite = await data(
        env,
        CREATE_PRODUCT,
        input={"name": "Support", "type": "COMPOSITE", "compositeProductIds": ids[:1]},
    )
    assert composite["createProduct"]["compositeProductIds"] == ids[:1]
    ids.append(composite["createProduct"]["id"])
    listed = (await data(env, PRODUCTS, all=False))["products"]["nodes"]
    assert sorted(p["id"] for p in listed) == sorted(ids)
    assert len(set(ids)) == 4


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "USAGE"}, "billable_metric_id"),
        ({"type": "USAGE", "billableMetricId": M, "pricingGroupKey": ["plan"]},
         "pricing_group_key"),
        # model and user are each group keys, but not together in one compound key
        ({"type": "USAGE", "billableMetricId": M, "pricingGroupKey": ["model"],
          "presentationGroupKey": ["user"]}, "pricing_group_key"),
        ({"type": "FIXED", "pricingGroupKey": ["model"]}, "pricing_group_key"),
        ({"type": "COMPOSITE"}, "composite_product_ids"),
        ({"type": "USAGE", "billableMetricId": M,
          "quantityConversion": {"conversionFactor": "0", "operation": "DIVIDE"}},
         "quantity_conversion.conversion_factor"),
        ({"type": "USAGE", "billableMetricId": M,
          "quantityRounding": {"decimalPlaces": -1, "roundingMethod": "ROUND_UP"}},
         "quantity_rounding.decimal_places"),
        ({"type": "FIXED", "name": "  "}, "name"),
    ],
)  # fmt: skip
async def test_invalid_products_name_the_field_and_create_nothing(
    env: Env, fields: dict[str, Any], field: str
) -> None:
    metric_id = await metric(env, **REGIONAL)
    if fields.get("billableMetricId") == M:
        fields = {**fields, "billableMetricId": metric_id}
    extensions = await failure(env, CREATE_PRODUCT, input={"name": "Bad", **fields})
    assert extensions == {"code": "VALIDATION", "field": field}
    assert (await data(env, PRODUCTS, all=True))["products"]["nodes"] == []


async def test_a_usage_product_of_an_unknown_metric_is_not_found(env: Env) -> None:
    extensions = await failure(
        env, CREATE_PRODUCT, input={"name": "Bad", "type": "USAGE", "billableMetricId": "bm_nope"}
    )
    assert extensions == {"code": "NOT_FOUND", "field": "billable_metric_id"}


async def test_a_composite_of_an_unknown_product_is_refused(env: Env) -> None:
    code = await code_of(
        env,
        CREATE_PRODUCT,
        input={"name": "Support", "type": "COMPOSITE", "compositeProductIds": ["prod_nope"]},
    )
    assert code in ("NOT_FOUND", "VALIDATION")
    assert (await data(env, PRODUCTS, all=True))["products"]["nodes"] == []


async def test_quantity_conversion_then_rounding_round_trips_and_bills(env: Env) -> None:
    metric_id = await metric(env)
    created = await data(
        env,
        CREATE_PRODUCT,
        input={
            "name": "Kilotokens",
            "type": "USAGE",
            "billableMetricId": metric_id,
            "quantityConversion": {"conversionFactor": "1000", "operation": "DIVIDE"},
            "quantityRounding": {"decimalPlaces": 2, "roundingMethod": "ROUND_UP"},
        },
    )
    product_ = created["createProduct"]
    assert product_["quantityConversion"] == {"conversionFactor": "1000", "operation": "DIVIDE"}
    assert product_["quantityRounding"] == {"decimalPlaces": 2, "roundingMethod": "ROUND_UP"}
    card_id = await rate_card(env, rate(product_["id"], "10"))
    customer_id = await customer(env, "Acme", ["acme"])
    await contract(env, customer_id, card_id)
    await send(env, llm("t1", "acme", 1234), llm("t2", "acme", 1))
    # 1235 tokens / 1000 = 1.235 kilotokens, rounded up to 1.24, at $10 each
    (line,) = (await draft(env, customer_id))["lines"]
    assert (line["quantity"], line["unitPrice"], line["amount"]) == ("1.24", "10", "12.40")


async def test_rename_and_archive_a_product(env: Env) -> None:
    fee = await product(env, "Setup", "FIXED")
    renamed = await data(env, UPDATE, input={"id": fee, "name": "  Onboarding "})
    assert renamed["updateProduct"] == {"id": fee, "name": "Onboarding"}
    assert (await failure(env, UPDATE, input={"id": fee, "name": " "})) == {
        "code": "VALIDATION",
        "field": "name",
    }
    assert await code_of(env, UPDATE, input={"id": "prod_nope", "name": "X"}) == "NOT_FOUND"

    archived = (await data(env, ARCHIVE, id=fee))["archiveProduct"]
    assert archived["name"] == "Onboarding" and archived["archivedAt"] == "2026-04-10T12:00:00Z"
    assert (await data(env, PRODUCTS, all=False))["products"]["nodes"] == []
    assert (await data(env, PRODUCTS, all=True))["products"]["nodes"] == [archived]
    assert await code_of(env, ARCHIVE, id="prod_nope") == "NOT_FOUND"


async def test_an_archived_product_takes_no_new_rates(env: Env) -> None:
    fee = await product(env, "Setup", "FIXED")
    card_id = await rate_card(env)
    await data(env, ARCHIVE, id=fee)
    added = await failure(env, ADD_RATES, input={"rateCardId": card_id, "rates": [rate(fee)]})
    assert added["code"] in ("NOT_FOUND", "VALIDATION")
    assert (await data(env, RATE_CARD, id=card_id))["rateCard"]["rates"] == []
    created = await failure(env, CREATE_RATE_CARD, input={"name": "Later", "rates": [rate(fee)]})
    assert created["code"] in ("NOT_FOUND", "VALIDATION")


async def test_a_rate_card_holds_every_rate_type(env: Env) -> None:
    tokens_metric = await metric(env)
    storage_metric = await metric(
        env,
        name="Storage",
        aggregationKey="gb",
        eventTypeFilter={"inValues": ["storage"]},
        propertyFilters=[{"name": "gb", "exists": True}],
        groupKeys=[],
    )
    tokens = await product(env, "Tokens", billableMetricId=tokens_metric)
    storage = await product(env, "Storage", billableMetricId=storage_metric)
    support = await product(env, "Support", "COMPOSITE", compositeProductIds=[tokens, storage])
    seats = await product(env, "Seats", "SUBSCRIPTION")
    rates = [
        rate(tokens, None, rateType="TIERED",
             tiers=[{"size": "10", "price": "1"}, {"price": "0.5"}]),
        rate(storage, "3", rateType="PACKAGE", packageSize="100"),
        rate(support, None, rateType="PERCENTAGE", fraction="0.1"),
        rate(seats, "20", rateType="SUBSCRIPTION"),
    ]  # fmt: skip
    created = (await data(env, CREATE_RATE_CARD, input={"name": "Std", "rates": rates}))[
        "createRateCard"
    ]
    rates_ = created["rates"]
    assert (created["name"], created["currency"]) == ("Std", "USD")
    by_product = {r["productId"]: r for r in created["rates"]}
    assert by_product[tokens]["tiers"] == [
        {"size": "10", "price": "1"},
        {"size": None, "price": "0.5"},
    ]
    assert by_product[tokens]["tierMode"] == "GRADUATED"
    assert (by_product[storage]["packageSize"], by_product[storage]["price"]) == ("100", "3")
    assert by_product[support]["fraction"] == "0.1"
    assert by_product[seats]["rateType"] == "SUBSCRIPTION"
    assert all(
        r["id"] and r["entitled"] and r["pricingGroupValues"] == {} for r in created["rates"]
    )
    found = (await data(env, RATE_CARD, id=created["id"]))["rateCard"]
    assert {**found, "rates": by_id(found["rates"])} == {**created, "rates": by_id(rates_)}

    customer_id = await customer(env, "Acme", ["acme"])
    subscription = {
        "productId": seats,
        "quantitySchedule": [{"startingAt": APRIL, "quantity": "2"}],
    }
    await contract(env, customer_id, created["id"], subscriptions=[subscription])
    storage_event = {**llm("s1", "acme", 0), "event_type": "storage", "properties": {"gb": 250}}
    await send(env, llm("t1", "acme", 15), storage_event)
    invoice = await draft(env, customer_id)
    # tokens: 10 x $1 + 5 x $0.50; storage: 3 started packages of 100 x $3;
    # seats: 2 x $20 for the whole period; support: 10% of (12.50 + 9.00)
    lines = {(line["type"], line["productId"]): line for line in invoice["lines"]}
    assert [line["type"] for line in invoice["lines"]] == [
        "USAGE",
        "USAGE",
        "SUBSCRIPTION",
        "COMPOSITE",
    ]
    assert {key: line["amount"] for key, line in lines.items()} == {
        ("USAGE", tokens): "12.50",
        ("USAGE", storage): "9.00",
        ("SUBSCRIPTION", seats): "40.00",
        ("COMPOSITE", support): "2.15",
    }
    assert lines["USAGE", storage]["quantity"] == "250"
    assert lines["USAGE", tokens]["tiers"] == [
        {"startingAt": "0", "quantity": "10", "price": "1", "amount": "10.00"},
        {"startingAt": "10", "quantity": "5", "price": "0.5", "amount": "2.50"},
    ]
    assert (invoice["subtotal"], invoice["total"]) == ("63.65", "63.65")


@pytest.mark.parametrize(
    ("rate_fields", "field"),
    [
        ({"rateType": "FLAT"}, "price"),
        ({"rateType": "FLAT", "price": "-1"}, "price"),
        ({"rateType": "PACKAGE", "price": "1"}, "package_size"),
        ({"rateType": "PERCENTAGE", "fraction": "1.5"}, "fraction"),
        ({"rateType": "TIERED"}, "tiers"),
        ({"rateType": "TIERED", "tiers": [{"price": "1"}, {"price": "2"}]}, "tiers[0].size"),
        ({"rateType": "TIERED", "tiers": [{"size": "5", "price": "1"}]}, "tiers[0].size"),
        ({"rateType": "FLAT", "price": "1", "pricingGroupValues": {"model": "x"}},
         "pricing_group_values"),
        ({"rateType": "FLAT", "price": "1", "endingBefore": APRIL}, "ending_before"),
    ],
)  # fmt: skip
async def test_invalid_rates_name_the_field_and_store_nothing(
    env: Env, rate_fields: dict[str, Any], field: str
) -> None:
    fee = await product(env, "Setup", "FIXED")
    bad = {"productId": fee, "startingAt": APRIL, **rate_fields}
    extensions = await failure(env, CREATE_RATE_CARD, input={"name": "Bad", "rates": [bad]})
    assert extensions["code"] == "VALIDATION"
    assert extensions["field"].endswith(field), extensions
    listed = await data(env, "{ rateCards { nodes { id } } }")
    assert listed["rateCards"]["nodes"] == []


async def test_an_unsupported_currency_is_refused(env: Env) -> None:
    extensions = await failure(env, CREATE_RATE_CARD, input={"name": "X", "currency": "XYZ"})
    assert extensions["code"] == "VALIDATION"


async def test_added_rates_reprice_the_draft_of_a_period_starting_after_them(env: Env) -> None:
    world = await shop(env, price="0.01", rate_from="2026-03-01T00:00:00Z")
    await send(env, llm("t1", "acme", 100))
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "1.00")]

    # A rate from April 15 is not in force at the April period's start: April keeps $0.01.
    later = rate(world.product_id, "0.05", "2026-04-15T00:00:00Z")
    added = await data(env, ADD_RATES, input={"rateCardId": world.rate_card_id, "rates": [later]})
    assert sorted(r["price"] for r in added["addRates"]["rates"]) == ["0.01", "0.05"]
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "1.00")]

    # A rate from March 20 starts after the $0.01 one and is in force on April 1: it wins.
    march = rate(world.product_id, "0.02", "2026-03-20T00:00:00Z")
    await data(env, ADD_RATES, input={"rateCardId": world.rate_card_id, "rates": [march]})
    assert amounts(await draft(env, world.customer_id)) == [("USAGE", "2.00")]

    # In May, the April 15 rate is the latest in force at the period start.
    env.clock.set(START + timedelta(days=30))  # May 10
    await send(env, llm("t2", "acme", 10, at="2026-05-10T11:00:00Z"))
    (may,) = [d for d in await drafts(env, world.customer_id) if d["startingAt"] > APRIL]
    assert amounts(may) == [("USAGE", "0.50")]


async def test_rate_card_by_id_is_the_organizations_own(env: Env) -> None:
    card_id = await rate_card(env, name="Mine")
    found = (await data(env, RATE_CARD, env.read_key, id=card_id))["rateCard"]
    assert (found["id"], found["name"], found["rates"]) == (card_id, "Mine", [])
    assert await code_of(env, RATE_CARD, id="rc_nope") == "NOT_FOUND"
    _, other_key = await env.new_org("Other")
    assert await code_of(env, RATE_CARD, other_key, id=card_id) == "NOT_FOUND"
    add = {"rateCardId": card_id, "rates": []}
    assert await code_of(env, ADD_RATES, other_key, input=add) == "NOT_FOUND"


# --- uniqueness keys ----------------------------------------------------------------------

Creator = Callable[[Env], Awaitable[tuple[str, dict[str, Any], str]]]


async def _metric_input(env: Env) -> tuple[str, dict[str, Any], str]:
    return CREATE_METRIC, TOKENS_METRIC, "{ billableMetrics(includeArchived: true) { id } }"


async def _product_input(env: Env) -> tuple[str, dict[str, Any], str]:
    return (
        CREATE_PRODUCT,
        {"name": "Setup", "type": "FIXED"},
        "{ products(includeArchived: true) { nodes { id } } }",
    )


async def _rate_card_input(env: Env) -> tuple[str, dict[str, Any], str]:
    return CREATE_RATE_CARD, {"name": "Std"}, "{ rateCards { nodes { id } } }"


async def _customer_input(env: Env) -> tuple[str, dict[str, Any], str]:
    return CREATE_CUSTOMER, {"name": "Acme"}, "{ customers { nodes { id } } }"


async def _contract_input(env: Env) -> tuple[str, dict[str, Any], str]:
    fields = {
        "customerId": await customer(env),
        "rateCardId": await rate_card(env),
        "startingAt": APRIL,
    }
    return CREATE_CONTRACT, fields, "{ contracts(includeArchived: true) { nodes { id } } }"


async def _package_input(env: Env) -> tuple[str, dict[str, Any], str]:
    mutation = "mutation($input: CreatePackageInput!) { createPackage(input: $input) { id } }"
    fields = {"name": "Starter", "rateCardId": await rate_card(env)}
    return mutation, fields, "{ packages { nodes { id } } }"


async def _alert_input(env: Env) -> tuple[str, dict[str, Any], str]:
    mutation = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
    fields = {
        "name": "Big spender",
        "alertType": "SPEND_THRESHOLD_REACHED",
        "threshold": "100",
        "customerId": await customer(env),
    }
    return mutation, fields, "{ alerts(includeArchived: true) { id } }"


@pytest.mark.parametrize(
    "creator",
    [
        _metric_input,
        _product_input,
        _rate_card_input,
        _customer_input,
        _contract_input,
        _package_input,
        _alert_input,
    ],
    ids=["metric", "product", "rate_card", "customer", "contract", "package", "alert"],
)
async def test_a_second_create_with_the_same_uniqueness_key_conflicts(
    env: Env, creator: Creator
) -> None:
    mutation, fields, count = await creator(env)

    async def listed() -> int:
        found = next(iter((await data(env, count)).values()))
        return len(found["nodes"] if isinstance(found, dict) else found)

    before = await listed()
    keyed = {**fields, "uniquenessKey": "import-42"}
    await data(env, mutation, input=keyed)
    assert await code_of(env, mutation, input=keyed) == "CONFLICT"
    assert await listed() == before + 1
    # the key is per kind and organization: another kind or organization may use it
    if mutation == CREATE_CUSTOMER:
        await data(
            env, CREATE_PRODUCT, input={"name": "F", "type": "FIXED", "uniquenessKey": "import-42"}
        )
    else:
        await data(env, CREATE_CUSTOMER, input={"name": "C", "uniquenessKey": "import-42"})
    _, other_key = await env.new_org("Other")
    if "customerId" not in fields and "rateCardId" not in fields:
        await data(env, mutation, other_key, input=keyed)
    assert (await failure(env, mutation, input={**fields, "uniquenessKey": ""}))["code"] == (
        "VALIDATION"
    )


# --- pagination ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["products", "customers"])
async def test_lists_page_through_every_item_once_oldest_first(env: Env, field: str) -> None:
    created = []
    for index in range(7):
        env.clock.set(START + timedelta(seconds=index))
        if field == "products":
            created.append(await product(env, f"Fee {index}", "FIXED"))
        else:
            created.append(await customer(env, f"Customer {index}"))
    pages = await walk(env, field, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [node["id"] for page in pages for node in page] == created
    assert [len(page) for page in await walk(env, field, 7)] == [7]
    assert [len(page) for page in await walk(env, field, 100)] == [7]


@pytest.mark.parametrize("field", ["products", "customers"])
async def test_page_size_and_cursor_are_validated(env: Env, field: str) -> None:
    query = f"""
    query($first: Int!, $after: String) {{
      {field}(first: $first, after: $after) {{ nodes {{ id }} }}
    }}"""
    for first in (101, 0, -1):
        extensions = await failure(env, query, first=first, after=None)
        assert extensions == {"code": "VALIDATION", "field": "first"}
    extensions = await failure(env, query, first=10, after="not a cursor")
    assert extensions == {"code": "VALIDATION", "field": "after"}


async def test_an_empty_list_has_no_next_page(env: Env) -> None:
    found = await data(env, "{ products { nodes { id } pageInfo { hasNextPage endCursor } } }")
    assert found["products"] == {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
