"""Organization A's objects for the isolation tests, all created through the public API
(its March invoices by the finalization job).

A has Stripe settings (no API base: Stripe itself, never reached) and both contracts are
billed through Stripe; neither customer is linked to a Stripe customer, so the (zero, but
sent) March invoices' pushes end in ``BILLING_PROVIDER_ERROR`` at once, without a Stripe
call: state that ``retryInvoiceSync`` would change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.api.support import create, data, iso
from tests.conftest import Env

MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


@dataclass
class Graph:
    """Organization A's objects, all created through GraphQL (invoices excepted)."""

    metric: str
    usage_product: str
    fixed_product: str
    rate_card: str
    customer_x: str
    customer_y: str
    contract_x: str
    contract_y: str
    package: str
    alert_x: str
    invoice_x: str
    invoice_y: str
    read_key_id: str
    endpoint: str
    message: str
    offset_rule: str
    transaction_id: str

    def ids(self) -> list[str]:
        return [v for k, v in vars(self).items() if k != "transaction_id"]


METRIC_INPUT = {
    "name": "Tokens",
    "aggregationType": "SUM",
    "aggregationKey": "tokens",
    "eventTypeFilter": {"inValues": ["llm"]},
    "propertyFilters": [{"name": "tokens", "exists": True}],
    "uniquenessKey": "metric-tokens",
}
CUSTOMER_X_INPUT = {"name": "X Corp", "ingestAliases": ["x-alias"], "uniquenessKey": "cust-x"}
ENDPOINT = {"url": "https://1.1.1.1/hooks", "uniquenessKey": "endpoint-a"}
STRIPE_SETTINGS = {
    "secretKey": "sk_test_organization_a_k3yA",
    "webhookSigningSecret": "whsec_organization_a",
    "apiBase": None,
    "sendZeroTotalInvoices": True,
}
STRIPE_KEY_HINT = "sk_test_…k3yA"
OFFSET_RULE = {
    "name": "Week before end",
    "trigger": "CONTRACT_ENDED",
    "offset": "-P7D",
    "uniquenessKey": "rule-a",
}


def credit(name: str, amount: str) -> dict[str, Any]:
    return {
        "name": name,
        "amount": amount,
        "startingAt": iso(MARCH),
        "endingBefore": "2026-07-01T00:00:00Z",
    }


async def march_invoices(env: Env, customer_ids: list[str]) -> list[str]:
    """The March invoice of each customer, finalized by the jobs (its grace ended Apr 2)."""
    query = "query($id: ID!) { customer(id: $id) { invoices { nodes { id startingAt } } } }"
    found = []
    for customer_id in customer_ids:
        nodes = (await data(env, query, id=customer_id))["customer"]["invoices"]["nodes"]
        (invoice,) = [n["id"] for n in nodes if n["startingAt"] == iso(MARCH)]
        found.append(invoice)
    return found


async def build_graph(env: Env) -> Graph:
    metric = await create(env, "createBillableMetric", "CreateBillableMetricInput", METRIC_INPUT)
    usage_product = await create(
        env,
        "createProduct",
        "CreateProductInput",
        {"name": "LLM tokens", "type": "USAGE", "billableMetricId": metric},
    )
    fixed_product = await create(
        env, "createProduct", "CreateProductInput", {"name": "Setup", "type": "FIXED"}
    )
    rate = {
        "productId": usage_product,
        "startingAt": "2026-01-01T00:00:00Z",
        "rateType": "FLAT",
        "price": "0.01",
    }
    rate_card = await create(
        env, "createRateCard", "CreateRateCardInput", {"name": "Standard", "rates": [rate]}
    )
    set_stripe = (
        "mutation($input: StripeSettingsInput!) { setStripeSettings(input: $input) "
        "{ secretKeyHint } }"
    )
    settings = await data(env, set_stripe, input=STRIPE_SETTINGS)
    assert settings["setStripeSettings"]["secretKeyHint"] == STRIPE_KEY_HINT
    customer_x = await create(env, "createCustomer", "CreateCustomerInput", CUSTOMER_X_INPUT)
    customer_y = await create(
        env,
        "createCustomer",
        "CreateCustomerInput",
        {"name": "Y Inc", "ingestAliases": ["y-alias"]},
    )
    contracts = []
    for customer, amount in ((customer_x, "100"), (customer_y, "50")):
        terms = {
            "customerId": customer,
            "rateCardId": rate_card,
            "startingAt": iso(MARCH),
            "billingProvider": "STRIPE",
            "credits": [credit("Promo", amount)],
        }
        contracts.append(await create(env, "createContract", "CreateContractInput", terms))
    package = await create(
        env,
        "createPackage",
        "CreatePackageInput",
        {
            "name": "Starter",
            "rateCardId": rate_card,
            "credits": [{"name": "Welcome", "amount": "10", "endingOffset": "P30D"}],
        },
    )
    alert_x = await create(
        env,
        "createAlert",
        "CreateAlertInput",
        {
            "name": "X spend",
            "alertType": "SPEND_THRESHOLD_REACHED",
            "threshold": "1000",
            "customerId": customer_x,
        },
    )
    events = [
        {
            "transaction_id": tx,
            "customer_id": alias,
            "event_type": "llm",
            "timestamp": "2026-04-10T11:00:00Z",
            "properties": {"tokens": tokens},
        }
        for tx, alias, tokens in (("a-tx-x", "x-alias", 1000), ("a-tx-y", "y-alias", 500))
    ]
    assert (await env.ingest(events)).json()["accepted"] == 2
    await env.run_jobs()
    keys = (await data(env, "{ apiKeys { id scopes } }", env.admin_key))["apiKeys"]
    (read_key_id,) = [k["id"] for k in keys if k["scopes"] == ["read"]]
    invoice_x, invoice_y = await march_invoices(env, [customer_x, customer_y])
    # created after the jobs ran: no delivery is ever attempted to this (public) address
    endpoint = await create(env, "createWebhookEndpoint", "CreateWebhookEndpointInput", ENDPOINT)
    messages = await data(env, "{ webhookMessages(first: 1) { nodes { id } } }")
    offset_rule = await create(env, "createOffsetRule", "CreateOffsetRuleInput", OFFSET_RULE)
    return Graph(
        metric=metric,
        usage_product=usage_product,
        fixed_product=fixed_product,
        rate_card=rate_card,
        customer_x=customer_x,
        customer_y=customer_y,
        contract_x=contracts[0],
        contract_y=contracts[1],
        package=package,
        alert_x=alert_x,
        invoice_x=invoice_x,
        invoice_y=invoice_y,
        read_key_id=read_key_id,
        endpoint=endpoint,
        message=messages["webhookMessages"]["nodes"][0]["id"],
        offset_rule=offset_rule,
        transaction_id="a-tx-x",
    )
