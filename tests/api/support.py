"""Helpers shared by the GraphQL API tests.

A GraphQL client bound to the ``env`` fixture (``post`` for the raw response, ``gql`` for
its body, ``data`` for calls that must succeed, ``failure`` for the first error's
extensions, ``codes``/``code`` for a body's error codes), wire events, and builders that
create a small world through the public API only: a billable metric, products, a rate card,
a customer and a contract. Every builder returns ids; assertions stay in the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import httpx

from tests.conftest import START, Env

APRIL = "2026-04-01T00:00:00Z"
MAY = "2026-05-01T00:00:00Z"
JUNE = "2026-06-01T00:00:00Z"
NOW = "2026-04-10T12:00:00Z"
assert START.isoformat().replace("+00:00", "Z") == NOW

TOKENS_METRIC = {
    "name": "Tokens",
    "aggregationType": "SUM",
    "aggregationKey": "tokens",
    "eventTypeFilter": {"inValues": ["llm"]},
    "propertyFilters": [
        {"name": "tokens", "exists": True},
        {"name": "model", "exists": True},
    ],
    "groupKeys": [["model"]],
}

INVOICE = """
  contractId customerId currency startingAt endingBefore status subtotal total
  lines {
    type productId name quantity unitPrice amount group startingAt endingBefore balanceId
    tiers { startingAt quantity price amount }
  }
  unratedUsage { productId group quantity reason }
"""

PRICE = "rateType price tiers { size price } tierMode packageSize fraction"

CONTRACT = f"""
  id customerId rateCardId startingAt endingBefore billingFrequency billingAnchor
  netPaymentTermsDays archivedAt
  overrides {{
    id productId startingAt endingBefore type pricingGroupValues multiplier priority
    overwriteRate {{ {PRICE} }}
  }}
  credits {{ id name amount startingAt endingBefore priority applicableProductIds }}
  recurringCredits {{
    id name amount frequency startingAt endingBefore priority applicableProductIds
  }}
  commits {{
    id name productId type amount startingAt endingBefore priority applicableProductIds
    invoiceAt
  }}
  subscriptions {{ id productId proration quantitySchedule {{ startingAt quantity }} }}
  scheduledCharges {{ id productId timestamp amount name }}
"""

BALANCE = """
  id sourceId contractId name kind amount startingAt endingBefore priority productId
  applicableProductIds ledgerBalance pendingDraftDeduction remainingAfterDrafts
  ledger { type amount timestamp invoiceId }
"""

CREATE_METRIC = """
mutation($input: CreateBillableMetricInput!) { createBillableMetric(input: $input) { id } }"""
CREATE_PRODUCT = """
mutation($input: CreateProductInput!) {
  createProduct(input: $input) {
    id name type billableMetricId pricingGroupKey presentationGroupKey compositeProductIds
    quantityConversion { conversionFactor operation }
    quantityRounding { decimalPlaces roundingMethod }
    archivedAt
  }
}"""
CREATE_RATE_CARD = f"""
mutation($input: CreateRateCardInput!) {{
  createRateCard(input: $input) {{
    id name currency
    rates {{ id productId startingAt endingBefore entitled pricingGroupValues {PRICE} }}
  }}
}}"""
CREATE_CUSTOMER = """
mutation($input: CreateCustomerInput!) {
  createCustomer(input: $input) {
    id name ingestAliases customFields stripeCustomerId stripeCollectionMethod createdAt
  }
}"""
CREATE_CONTRACT = f"""
mutation($input: CreateContractInput!) {{ createContract(input: $input) {{ {CONTRACT} }} }}"""
EDIT_CONTRACT = f"""
mutation($input: EditContractInput!) {{ editContract(input: $input) {{ {CONTRACT} }} }}"""
DRAFTS = f"""
query($id: ID!) {{ customer(id: $id) {{ draftInvoices {{ {INVOICE} }} }} }}"""
BALANCES = f"""
query($id: ID!, $expired: Boolean! = false) {{
  customer(id: $id) {{ balances(includeExpired: $expired) {{ {BALANCE} }} }}
}}"""


# --- the GraphQL client -------------------------------------------------------------------


class Credentials(Enum):
    """``ANONYMOUS``, given as a ``key``, sends no ``Authorization`` header at all."""

    ANONYMOUS = "anonymous"


ANONYMOUS = Credentials.ANONYMOUS


def auth(key: str | None) -> dict[str, str]:
    """The ``Authorization`` header for ``key`` (no header without one)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


async def post(
    env: Env,
    query: str,
    /,
    key: str | Credentials | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    **variables: Any,
) -> httpx.Response:
    """The raw response to one operation (for tests about status codes and bodies), sent
    with the admin key unless ``key`` is given (``ANONYMOUS``: no credentials) by
    ``env.client`` unless ``client`` is given."""
    headers = {} if key is ANONYMOUS else auth(key or env.admin_key)
    return await (client or env.client).post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


async def gql(
    env: Env, query: str, /, key: str | Credentials | None = None, **variables: Any
) -> dict[str, Any]:
    """The response body of one GraphQL request, which must be answered with 200."""
    response = await post(env, query, key, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(env: Env, query: str, /, key: str | None = None, **variables: Any) -> dict[str, Any]:
    """The ``data`` of a request that must succeed."""
    body = await gql(env, query, key, **variables)
    assert "errors" not in body, body["errors"]
    found: dict[str, Any] = body["data"]
    return found


async def failure(
    env: Env, query: str, /, key: str | None = None, *, alone: bool = False, **variables: Any
) -> Any:
    """The ``extensions`` of the first error of a request that must fail; with ``alone``,
    of its only error, and its ``data`` must be null (nothing half-done)."""
    body = await gql(env, query, key, **variables)
    assert body.get("errors"), f"expected an error, got {body}"
    if alone:
        assert body["data"] is None, body
        (error,) = body["errors"]
        return error["extensions"]
    return body["errors"][0]["extensions"]


async def code_of(env: Env, query: str, /, key: str | None = None, **variables: Any) -> str:
    """The ``extensions.code`` of a request that must fail."""
    return str((await failure(env, query, key, **variables))["code"])


def codes(body: dict[str, Any]) -> list[str]:
    """The ``extensions.code`` of every error of a response body (an error without one
    fails the test)."""
    errors = body.get("errors") or []
    return [str(error["extensions"]["code"]) for error in errors]


def code(body: dict[str, Any]) -> str:
    """The code of a response body's only error."""
    found = codes(body)
    assert len(found) == 1, body
    return found[0]


async def walk(
    env: Env, field: str, first: int, selection: str = "id", **arguments: Any
) -> list[list[Any]]:
    """Every page of the connection ``field`` (``first`` a page), following ``endCursor``
    until ``hasNextPage`` is false; asserts each page's edges and nodes agree."""
    query = f"""
    query($first: Int!, $after: String) {{
      {field}(first: $first, after: $after{"".join(f", {k}: {v}" for k, v in arguments.items())}) {{
        edges {{ cursor node {{ {selection} }} }}
        nodes {{ {selection} }}
        pageInfo {{ hasNextPage endCursor }}
      }}
    }}"""
    pages: list[list[Any]] = []
    after = None
    while True:
        found = (await data(env, query, first=first, after=after))[field]
        assert [edge["node"] for edge in found["edges"]] == found["nodes"]
        pages.append(found["nodes"])
        info = found["pageInfo"]
        assert info["endCursor"] == (found["edges"][-1]["cursor"] if found["edges"] else None)
        if not info["hasNextPage"]:
            return pages
        assert len(pages) < 100, "the connection never ends"
        after = info["endCursor"]


async def admin_key_id(env: Env, secret: str | None = None) -> str:
    """The id of the API key whose secret is ``secret`` (the fixture's admin key by default)."""
    secret = secret or env.admin_key
    keys = (await data(env, "{ apiKeys { id displayPrefix } }"))["apiKeys"]
    (found,) = [k["id"] for k in keys if secret.startswith(k["displayPrefix"])]
    return str(found)


# --- wire events --------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def llm(
    tx: str,
    customer: str,
    tokens: int | str,
    model: str = "gpt",
    at: str = "2026-04-10T11:00:00Z",
    **properties: Any,
) -> dict[str, Any]:
    """A wire event the Tokens metric counts: ``tokens`` of ``model`` at ``at``."""
    return {
        "transaction_id": tx,
        "customer_id": customer,
        "event_type": "llm",
        "timestamp": at,
        "properties": {"tokens": tokens, "model": model, **properties},
    }


async def send(env: Env, *events: dict[str, Any]) -> dict[str, Any]:
    """Ingest ``events``; every one must be accepted. Returns the response body."""
    response = await env.ingest(list(events))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["accepted"] == len(events), body
    return body


# --- builders -----------------------------------------------------------------------------


async def create(env: Env, mutation: str, input_type: str, value: dict[str, Any]) -> str:
    """The id ``mutation(input: value) { id }`` returns (admin key; must succeed)."""
    query = f"mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ id }} }}"
    found = await data(env, query, input=value)
    return str(found[mutation]["id"])


async def metric(env: Env, **fields: Any) -> str:
    """A billable metric (the Tokens metric unless ``fields`` change it), back-filled."""
    created = await data(env, CREATE_METRIC, input={**TOKENS_METRIC, **fields})
    await env.run_jobs()
    return str(created["createBillableMetric"]["id"])


async def product(env: Env, name: str, type: str = "USAGE", **fields: Any) -> str:
    created = await data(env, CREATE_PRODUCT, input={"name": name, "type": type, **fields})
    return str(created["createProduct"]["id"])


def rate(product_id: str, price: str | None = "1", starting_at: str = APRIL, **fields: Any) -> Any:
    """A RateInput: flat at ``price`` unless ``fields`` say otherwise."""
    found: dict[str, Any] = {"productId": product_id, "startingAt": starting_at}
    found["rateType"] = fields.pop("rateType", "FLAT")
    if price is not None:
        found["price"] = price
    return {**found, **fields}


async def rate_card(env: Env, *rates: Any, name: str = "Standard", **fields: Any) -> str:
    created = await data(
        env, CREATE_RATE_CARD, input={"name": name, "rates": list(rates), **fields}
    )
    return str(created["createRateCard"]["id"])


async def customer(env: Env, name: str = "Acme", aliases: Iterable[str] = (), **fields: Any) -> str:
    created = await data(
        env, CREATE_CUSTOMER, input={"name": name, "ingestAliases": list(aliases), **fields}
    )
    return str(created["createCustomer"]["id"])


async def contract(
    env: Env, customer_id: str, rate_card_id: str, starting_at: str = APRIL, **fields: Any
) -> Any:
    """A contract (every field of it, as ``CONTRACT`` selects)."""
    created = await data(
        env,
        CREATE_CONTRACT,
        input={
            "customerId": customer_id,
            "rateCardId": rate_card_id,
            "startingAt": starting_at,
            **fields,
        },
    )
    return created["createContract"]


async def edit(env: Env, contract_id: str, **changes: Any) -> Any:
    """Edit a contract (must succeed); returns the edited contract."""
    edited = await data(env, EDIT_CONTRACT, input={"contractId": contract_id, **changes})
    return edited["editContract"]


async def drafts(env: Env, customer_id: str, key: str | None = None) -> list[Any]:
    found = await data(env, DRAFTS, key, id=customer_id)
    return list(found["customer"]["draftInvoices"])


async def draft(env: Env, customer_id: str) -> Any:
    """The customer's one draft invoice."""
    (only,) = await drafts(env, customer_id)
    return only


async def balances(env: Env, customer_id: str, expired: bool = False) -> list[Any]:
    found = await data(env, BALANCES, id=customer_id, expired=expired)
    return list(found["customer"]["balances"])


def amounts(invoice: Any) -> list[tuple[str, str]]:
    """``(type, amount)`` of every line, in invoice order."""
    return [(line["type"], line["amount"]) for line in invoice["lines"]]


@dataclass(frozen=True)
class Shop:
    """A customer (alias ``acme``) on a monthly contract from April 1 whose rate card prices
    the Tokens metric's usage product at ``price`` per token."""

    metric_id: str
    product_id: str
    rate_card_id: str
    customer_id: str
    contract: Any

    @property
    def contract_id(self) -> str:
        return str(self.contract["id"])


async def shop(
    env: Env, price: str = "0.01", rate_from: str = APRIL, **contract_fields: Any
) -> Shop:
    metric_id = await metric(env)
    product_id = await product(env, "Tokens", billableMetricId=metric_id)
    card_id = await rate_card(env, rate(product_id, price, rate_from))
    customer_id = await customer(env, "Acme", ["acme"])
    created = await contract(env, customer_id, card_id, **contract_fields)
    return Shop(metric_id, product_id, card_id, customer_id, created)
