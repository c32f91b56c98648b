"""One operation per root field (query, mutation, subscription) naming organization A's
objects: what the isolation tests try with other callers' credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.isolation_graph import (
    APRIL,
    CUSTOMER_X_INPUT,
    ENDPOINT,
    METRIC_INPUT,
    OFFSET_RULE,
    Graph,
    credit,
)
from tests.api.support import iso

# One operation per root field, naming organization A's objects (customer X's where a
# customer is named). Variables are built from the graph.
Probe = tuple[str, Callable[[Graph], dict[str, Any]]]
USAGE_ARGS = 'startingAt: "2026-04-01T00:00:00Z", endingBefore: "2026-04-11T00:00:00Z"'

QUERY_PROBES: dict[str, Probe] = {
    "organization": ("{ organization { id name } }", lambda g: {}),
    "billableMetrics": (
        "{ billableMetrics(includeArchived: true) { id } }",
        lambda g: {},
    ),
    "products": ("{ products(first: 100, includeArchived: true) { nodes { id } } }", lambda g: {}),
    "rateCards": ("{ rateCards(first: 100) { nodes { id rates { productId } } } }", lambda g: {}),
    "rateCard": (
        "query($id: ID!) { rateCard(id: $id) { id rates { id } } }",
        lambda g: {"id": g.rate_card},
    ),
    "customers": ("{ customers(first: 100) { nodes { id } } }", lambda g: {}),
    "customer": (
        "query($id: ID!, $metric: ID!) { customer(id: $id) { id name "
        "draftInvoices { total } balances { id } alerts { id } "
        f"usage(billableMetricId: $metric, {USAGE_ARGS}) {{ quantity }} }} }}",
        lambda g: {"id": g.customer_x, "metric": g.metric},
    ),
    "contracts": (
        "query($c: ID!) { all: contracts(first: 100, includeArchived: true) { nodes { id } } "
        "ofX: contracts(customerId: $c, includeArchived: true) { nodes { id } } }",
        lambda g: {"c": g.customer_x},
    ),
    "contract": (
        "query($id: ID!) { contract(id: $id) { id billingProvider edits { version } } }",
        lambda g: {"id": g.contract_x},
    ),
    "packages": ("{ packages(first: 100) { nodes { id } } }", lambda g: {}),
    "invoice": (
        "query($id: ID!) { invoice(id: $id) { id total billingProvider { status error } } }",
        lambda g: {"id": g.invoice_x},
    ),
    "costPreview": (
        "query($c: ID!, $events: [EventInput!]!) { costPreview(customerId: $c, events: $events) "
        "{ invoices { totalDelta } } }",
        lambda g: {
            "c": g.customer_x,
            "events": [
                {
                    "transactionId": "p1",
                    "eventType": "llm",
                    "timestamp": "2026-04-10T10:00:00Z",
                    "properties": {"tokens": "5"},
                }
            ],
        },
    ),
    "searchEvents": (
        "query($tx: [String!]!) { searchEvents(transactionIds: $tx) { transactionId customerId } }",
        lambda g: {"tx": [g.transaction_id]},
    ),
    "alerts": ("{ alerts(includeArchived: true) { id customerId } }", lambda g: {}),
    "apiKeys": ("{ apiKeys { id } }", lambda g: {}),
    "auditLog": (
        "query($o: String!) { all: auditLog(first: 100) { nodes { objectId } } "
        "ofX: auditLog(objectId: $o) { nodes { id } } }",
        lambda g: {"o": g.customer_x},
    ),
    "webhookEndpoints": ("{ webhookEndpoints(first: 100) { nodes { id url } } }", lambda g: {}),
    "webhookEndpoint": (
        "query($id: ID!) { webhookEndpoint(id: $id) { id url } }",
        lambda g: {"id": g.endpoint},
    ),
    "webhookMessages": (
        "query($c: ID!) { all: webhookMessages(first: 100) { nodes { id payload } } "
        "ofX: webhookMessages(customerId: $c) { nodes { id } } }",
        lambda g: {"c": g.customer_x},
    ),
    "webhookMessage": (
        "query($id: ID!) { webhookMessage(id: $id) { id payload } }",
        lambda g: {"id": g.message},
    ),
    "offsetRules": ("{ offsetRules { id name } }", lambda g: {}),
    "stripeSettings": (
        "{ stripeSettings { secretKeyHint webhookSecretSet apiBase sendZeroTotalInvoices } }",
        lambda g: {},
    ),
}


OTHER_STRIPE_SETTINGS = {
    "secretKey": "sk_test_intruder_B222",
    "webhookSigningSecret": None,
    "apiBase": None,
    "sendZeroTotalInvoices": False,
}
OTHER_STRIPE_KEY_HINT = "sk_test_…B222"


def mutation(name: str, input_type: str, select: str = "id") -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {select} }} }}"


def by_id(name: str, select: str = "id") -> str:
    return f"mutation($id: ID!) {{ {name}(id: $id) {{ {select} }} }}"


MUTATION_PROBES: dict[str, Probe] = {
    # Creating in B with A's uniqueness key must neither CONFLICT nor touch A.
    "createBillableMetric": (
        mutation("createBillableMetric", "CreateBillableMetricInput"),
        lambda g: {"input": METRIC_INPUT},
    ),
    "archiveBillableMetric": (by_id("archiveBillableMetric"), lambda g: {"id": g.metric}),
    "createProduct": (
        mutation("createProduct", "CreateProductInput"),
        lambda g: {"input": {"name": "Theirs", "type": "USAGE", "billableMetricId": g.metric}},
    ),
    "updateProduct": (
        mutation("updateProduct", "UpdateProductInput", "id name"),
        lambda g: {"input": {"id": g.usage_product, "name": "Hijacked"}},
    ),
    "archiveProduct": (by_id("archiveProduct"), lambda g: {"id": g.fixed_product}),
    "createRateCard": (
        mutation("createRateCard", "CreateRateCardInput"),
        lambda g: {
            "input": {
                "name": "Theirs",
                "rates": [
                    {
                        "productId": g.usage_product,
                        "startingAt": "2026-01-01T00:00:00Z",
                        "rateType": "FLAT",
                        "price": "1",
                    }
                ],
            }
        },
    ),
    "addRates": (
        mutation("addRates", "AddRatesInput"),
        lambda g: {
            "input": {
                "rateCardId": g.rate_card,
                "rates": [
                    {
                        "productId": g.usage_product,
                        "startingAt": "2026-05-01T00:00:00Z",
                        "rateType": "FLAT",
                        "price": "0",
                    }
                ],
            }
        },
    ),
    "createCustomer": (
        mutation("createCustomer", "CreateCustomerInput"),
        lambda g: {"input": CUSTOMER_X_INPUT},
    ),
    "updateCustomer": (
        mutation("updateCustomer", "UpdateCustomerInput", "id name"),
        lambda g: {"input": {"id": g.customer_x, "name": "Hijacked", "addIngestAliases": ["h"]}},
    ),
    "setBillingProvider": (
        mutation("setBillingProvider", "BillingProviderInput", "id stripeCustomerId"),
        lambda g: {"input": {"customerId": g.customer_x, "stripeCustomerId": "cus_evil"}},
    ),
    "createContract": (
        mutation("createContract", "CreateContractInput"),
        lambda g: {
            "input": {
                "customerId": g.customer_x,
                "rateCardId": g.rate_card,
                "startingAt": iso(APRIL),
                "credits": [credit("Free money", "1000000")],
            }
        },
    ),
    "createContractFromPackage": (
        mutation("createContractFromPackage", "CreateContractFromPackageInput"),
        lambda g: {
            "input": {"packageId": g.package, "customerId": g.customer_x, "startingAt": iso(APRIL)}
        },
    ),
    "editContract": (
        mutation("editContract", "EditContractInput", "id edits { version }"),
        lambda g: {
            "input": {
                "contractId": g.contract_x,
                "addCredits": [credit("Free money", "1000000")],
                "billingProvider": "NONE",
            }
        },
    ),
    "archiveContract": (by_id("archiveContract"), lambda g: {"id": g.contract_x}),
    "createPackage": (
        mutation("createPackage", "CreatePackageInput"),
        lambda g: {"input": {"name": "Theirs", "rateCardId": g.rate_card}},
    ),
    "createAlert": (
        mutation("createAlert", "CreateAlertInput", "id statuses { state }"),
        lambda g: {
            "input": {
                "name": "Spy",
                "alertType": "SPEND_THRESHOLD_REACHED",
                "threshold": "0",
                "customerId": g.customer_x,
            }
        },
    ),
    "archiveAlert": (by_id("archiveAlert"), lambda g: {"id": g.alert_x}),
    "createApiKey": (
        mutation("createApiKey", "CreateApiKeyInput", "apiKey { id } secret"),
        lambda g: {"input": {"scopes": ["admin"], "name": "backdoor"}},
    ),
    "revokeApiKey": (by_id("revokeApiKey"), lambda g: {"id": g.read_key_id}),
    "createCustomerToken": (
        mutation("createCustomerToken", "CreateCustomerTokenInput", "token customerId"),
        lambda g: {"input": {"customerId": g.customer_x}},
    ),
    "resetAlert": (
        "mutation($a: ID!, $c: ID!) { resetAlert(alertId: $a, customerId: $c) { id } }",
        lambda g: {"a": g.alert_x, "c": g.customer_x},
    ),
    "voidInvoice": (by_id("voidInvoice"), lambda g: {"id": g.invoice_x}),
    "regenerateInvoice": (by_id("regenerateInvoice"), lambda g: {"id": g.invoice_x}),
    "createWebhookEndpoint": (
        mutation("createWebhookEndpoint", "CreateWebhookEndpointInput"),
        lambda g: {"input": ENDPOINT},
    ),
    "updateWebhookEndpoint": (
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {url: "
        '"https://1.0.0.1/stolen"}) { id } }',
        lambda g: {"id": g.endpoint},
    ),
    "deleteWebhookEndpoint": (by_id("deleteWebhookEndpoint"), lambda g: {"id": g.endpoint}),
    "rotateWebhookEndpointSecret": (
        by_id("rotateWebhookEndpointSecret", "id secret"),
        lambda g: {"id": g.endpoint},
    ),
    "replayWebhookMessage": (
        "mutation($m: ID!, $e: ID) { replayWebhookMessage(messageId: $m, endpointId: $e) { id } }",
        lambda g: {"m": g.message, "e": g.endpoint},
    ),
    "replayFailedWebhookMessages": (
        "mutation($e: ID!) { replayFailedWebhookMessages(endpointId: $e, "
        'since: "2026-01-01T00:00:00Z") }',
        lambda g: {"e": g.endpoint},
    ),
    "createOffsetRule": (
        mutation("createOffsetRule", "CreateOffsetRuleInput"),
        lambda g: {"input": OFFSET_RULE},
    ),
    "archiveOffsetRule": (by_id("archiveOffsetRule"), lambda g: {"id": g.offset_rule}),
    # Another organization's settings are its own: this must neither replace A's nor show
    # them (no API base: the installation's SSRF guard refuses private addresses).
    "setStripeSettings": (
        mutation(
            "setStripeSettings",
            "StripeSettingsInput",
            "secretKeyHint webhookSecretSet apiBase sendZeroTotalInvoices",
        ),
        lambda g: {"input": OTHER_STRIPE_SETTINGS},
    ),
    "retryInvoiceSync": (
        "mutation($id: ID!) { retryInvoiceSync(invoiceId: $id) { id billingProvider { status } } }",
        lambda g: {"id": g.invoice_x},
    ),
}
PROBES = {**QUERY_PROBES, **MUTATION_PROBES}

# Subscriptions run over a websocket (tests/api/live.py), naming customer X.
SUBSCRIPTION_PROBES: dict[str, Probe] = {
    "usageUpdated": (
        "subscription($id: ID!, $metric: ID!) { usageUpdated(customerId: $id) { id name "
        "draftInvoices { total } balances { id } alerts { id } invoices { nodes { id } } "
        f"usage(billableMetricId: $metric, {USAGE_ARGS}) {{ quantity }} }} }}",
        lambda g: {"id": g.customer_x, "metric": g.metric},
    ),
    "draftInvoiceUpdated": (
        "subscription($id: ID!) { draftInvoiceUpdated(customerId: $id) { customerId total } }",
        lambda g: {"id": g.customer_x},
    ),
    "balanceUpdated": (
        "subscription($id: ID!) { balanceUpdated(customerId: $id, includeExpired: true) "
        "{ id contractId } }",
        lambda g: {"id": g.customer_x},
    ),
    "alertStateChanged": (
        "subscription($id: ID!) { alertStateChanged(customerId: $id) "
        "{ customerId statuses { state } } }",
        lambda g: {"id": g.customer_x},
    ),
}
