"""Tenant and customer isolation (SPEC §9): every root field of the schema, called with a
second organization's key, a customer token of another customer, a read key, an ingest key
and an expired token, reveals and changes nothing of organization A.

``PROBES`` holds one operation per root field naming organization A's objects;
``test_every_root_field_has_an_isolation_probe`` fails as soon as the schema has a root
field without one, so every new field needs an isolation case before it ships."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from gql.transport.exceptions import TransportConnectionFailed

from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from resolvers.graphql.app import build_schema
from tests.api.isolation_graph import APRIL, STRIPE_KEY_HINT, Graph, build_graph
from tests.api.isolation_probes import (
    MUTATION_PROBES,
    OTHER_STRIPE_KEY_HINT,
    PROBES,
    QUERY_PROBES,
    SUBSCRIPTION_PROBES,
    USAGE_ARGS,
    by_id,
    mutation,
)
from tests.api.live import app_of, first, serving
from tests.api.support import code, codes, data, gql, iso
from tests.conftest import Env


async def run(env: Env, field: str, graph: Graph, key: str) -> dict[str, Any]:
    query, variables = PROBES[field]
    return await gql(env, query, key, **variables(graph))


def test_every_root_field_has_an_isolation_probe() -> None:
    schema = build_schema()._schema
    assert schema.query_type is not None and schema.mutation_type is not None
    assert set(QUERY_PROBES) == set(schema.query_type.fields)
    assert set(MUTATION_PROBES) == set(schema.mutation_type.fields)
    assert schema.subscription_type is not None
    assert set(SUBSCRIPTION_PROBES) == set(schema.subscription_type.fields)


SNAPSHOT = """{
  organization { id name }
  billableMetrics(includeArchived: true) { id name archivedAt }
  products(first: 100, includeArchived: true) { nodes { id name archivedAt } }
  rateCards(first: 100) { nodes { id name rates { id productId price startingAt } } }
  customers(first: 100) {
    nodes {
      id name ingestAliases customFields stripeCustomerId archivedAt
      contracts { id archivedAt billingProvider credits { id amount } edits { version } }
      draftInvoices { total lines { type amount } }
      balances { id remainingAfterDrafts }
      alerts { id archivedAt }
      invoices { nodes { id status billingProvider { status paymentStatus error } } }
    }
  }
  contracts(first: 100, includeArchived: true) { nodes { id archivedAt } }
  packages(first: 100) { nodes { id name archivedAt } }
  alerts(includeArchived: true) { id archivedAt }
  apiKeys { id scopes revokedAt }
  auditLog(first: 100) { nodes { id action objectId } }
  webhookEndpoints(first: 100) { nodes { id url enabled secret previousSecretExpiresAt } }
  webhookMessages(first: 100) { nodes { id deliveries { id status } } }
  offsetRules { id }
  stripeSettings { secretKeyHint webhookSecretSet apiBase sendZeroTotalInvoices updatedAt }
}"""


STRIPE_SETTINGS = "{ stripeSettings { secretKeyHint } }"


async def snapshot(env: Env) -> dict[str, Any]:
    """Everything organization A's admin can see (what an intruder must not change)."""
    return await data(env, SNAPSHOT, env.admin_key)


async def customer_token(env: Env, customer_id: str, ttl_seconds: int = 3600) -> dict[str, Any]:
    minted = await data(
        env,
        mutation("createCustomerToken", "CreateCustomerTokenInput", "token customerId expiresAt"),
        env.admin_key,
        input={"customerId": customer_id, "ttlSeconds": ttl_seconds},
    )
    found: dict[str, Any] = minted["createCustomerToken"]
    return found


def outcome(body: dict[str, Any]) -> str:
    """OK, or the codes of the errors (``data`` must then be null, or hold only nulls for a
    nullable root field such as ``stripeSettings``: nothing half-done)."""
    if not body.get("errors"):
        return "OK"
    assert body["data"] is None or set(body["data"].values()) == {None}, body
    return ",".join(sorted(set(codes(body))))


# What organization B's admin key gets for each probe: NOT_FOUND wherever one of A's
# objects is named; OK (with none of A's ids in the data) for the lists and B's own
# settings, and for the creates that name nothing of A's (A's uniqueness keys and ingest
# aliases are free in B; B's Stripe settings are B's own).
LISTS = (
    "organization", "billableMetrics", "products", "rateCards", "customers", "contracts",
    "packages", "searchEvents", "alerts", "apiKeys", "auditLog", "webhookEndpoints",
    "webhookMessages", "offsetRules", "stripeSettings",
)  # fmt: skip
OWN_CREATES = (
    "createBillableMetric", "createCustomer", "createApiKey", "createWebhookEndpoint",
    "createOffsetRule", "setStripeSettings",
)  # fmt: skip
SECOND_ORG = {
    field: "OK" if field in LISTS or field in OWN_CREATES else "NOT_FOUND" for field in PROBES
}
# What customer Y's token gets: NOT_FOUND on the fields a token may use, when they name X;
# FORBIDDEN on every other field.
CUSTOMER_FIELDS = ("customer", "invoice", "costPreview", "createAlert", "archiveAlert")
OTHER_CUSTOMER = {
    field: "NOT_FOUND" if field in CUSTOMER_FIELDS else "FORBIDDEN" for field in PROBES
}


def test_every_probe_has_an_expectation() -> None:
    assert set(SECOND_ORG) == set(PROBES) == set(OTHER_CUSTOMER)


async def test_a_second_organization_reaches_nothing_of_the_first(env: Env) -> None:
    graph = await build_graph(env)
    before = await snapshot(env)
    assert before["stripeSettings"]["secretKeyHint"] == STRIPE_KEY_HINT
    other_org, other_key = await env.new_org("Other")
    assert await data(env, STRIPE_SETTINGS, other_key) == {"stripeSettings": None}
    outcomes, leaks = {}, {}
    # Mutations first, so B's own lists are not empty when the queries run.
    for field in [*MUTATION_PROBES, *QUERY_PROBES]:
        body = await run(env, field, graph, other_key)
        outcomes[field] = outcome(body)
        shown = json.dumps(body["data"])
        leaks[field] = [object_id for object_id in graph.ids() if object_id in shown]
        if STRIPE_KEY_HINT in json.dumps(body, ensure_ascii=False):
            leaks[field].append(STRIPE_KEY_HINT)
    assert {field: ids for field, ids in leaks.items() if ids} == {}
    assert await snapshot(env) == before
    # B's setStripeSettings set B's own settings, which are all B sees.
    assert await data(env, STRIPE_SETTINGS, other_key) == {
        "stripeSettings": {"secretKeyHint": OTHER_STRIPE_KEY_HINT}
    }
    mine = await data(env, "{ organization { id } customers { nodes { name } } }", other_key)
    assert mine == {"organization": {"id": other_org}, "customers": {"nodes": [{"name": "X Corp"}]}}
    query, variables = PROBES["searchEvents"]
    assert await data(env, query, other_key, **variables(graph)) == {"searchEvents": []}
    assert outcomes == SECOND_ORG


async def test_a_transaction_id_and_alias_of_the_first_organization_are_free_in_the_second(
    env: Env,
) -> None:
    graph = await build_graph(env)
    _, other_key = await env.new_org("Other")
    query, variables = MUTATION_PROBES["createCustomer"]
    theirs = (await data(env, query, other_key, **variables(graph)))["createCustomer"]["id"]
    same = {
        "transaction_id": graph.transaction_id,
        "customer_id": "x-alias",
        "event_type": "llm",
        "timestamp": "2026-04-10T11:30:00Z",
        "properties": {"tokens": 7},
    }
    ingested = (await env.ingest([same], key=other_key)).json()
    assert (ingested["accepted"], ingested["duplicates"]) == (1, [])
    search, variables = QUERY_PROBES["searchEvents"]
    found = await data(env, search, other_key, **variables(graph))
    assert found == {"searchEvents": [{"transactionId": "a-tx-x", "customerId": theirs}]}
    found = await data(env, search, env.read_key, **variables(graph))
    assert found == {"searchEvents": [{"transactionId": "a-tx-x", "customerId": graph.customer_x}]}


async def test_the_second_organization_cannot_reference_the_first_ones_objects(
    env: Env,
) -> None:
    """B's own objects joined to one of A's: every such reference is NOT_FOUND, and a
    reference to A's metric reads exactly like a reference to no metric at all."""
    graph = await build_graph(env)
    _, key = await env.new_org("Other")
    own_customer = (
        await data(env, mutation("createCustomer", "CreateCustomerInput"), key, input={"name": "B"})
    )["createCustomer"]["id"]
    own_card = (
        await data(env, mutation("createRateCard", "CreateRateCardInput"), key, input={"name": "B"})
    )["createRateCard"]["id"]
    contract = mutation("createContract", "CreateContractInput")
    for customer_id, card_id in ((own_customer, graph.rate_card), (graph.customer_x, own_card)):
        terms = {"customerId": customer_id, "rateCardId": card_id, "startingAt": iso(APRIL)}
        assert code(await gql(env, contract, key, input=terms)) == "NOT_FOUND"
    from_package = {
        "packageId": graph.package,
        "customerId": own_customer,
        "startingAt": iso(APRIL),
    }
    body = await gql(
        env,
        mutation("createContractFromPackage", "CreateContractFromPackageInput"),
        key,
        input=from_package,
    )
    assert code(body) == "NOT_FOUND"
    alert = {
        "name": "Usage",
        "alertType": "USAGE_THRESHOLD_REACHED",
        "threshold": "1",
        "customerId": own_customer,
        "billableMetricId": graph.metric,
    }
    assert code(await gql(env, mutation("createAlert", "CreateAlertInput"), key, input=alert)) == (
        "NOT_FOUND"
    )
    composite = {"name": "Cut", "type": "COMPOSITE", "compositeProductIds": [graph.usage_product]}
    body = await gql(env, mutation("createProduct", "CreateProductInput"), key, input=composite)
    assert code(body) == "NOT_FOUND"
    usage = (
        "query($id: ID!, $metric: ID!) { customer(id: $id) { "
        f"usage(billableMetricId: $metric, {USAGE_ARGS}) {{ quantity }} }} }}"
    )
    theirs = await gql(env, usage, key, id=own_customer, metric=graph.metric)
    absent = await gql(env, usage, key, id=own_customer, metric="bm_doesnotexist")
    assert theirs["data"] is None and absent["data"] is None
    assert theirs["errors"][0]["extensions"] == absent["errors"][0]["extensions"]
    assert codes(theirs) == codes(absent)
    assert (await data(env, "{ contracts { nodes { id } } }", key))["contracts"]["nodes"] == []
    assert (await data(env, "{ alerts { id } }", key))["alerts"] == []


async def test_a_customer_token_reaches_nothing_beyond_its_customer(env: Env) -> None:
    graph = await build_graph(env)
    token = (await customer_token(env, graph.customer_y))["token"]
    before = await snapshot(env)
    outcomes = {field: outcome(await run(env, field, graph, token)) for field in PROBES}
    assert outcomes == OTHER_CUSTOMER
    assert await snapshot(env) == before


OWN_CUSTOMER = (
    "query($id: ID!, $metric: ID!) { customer(id: $id) { id name contracts { id } "
    "draftInvoices { total lines { type amount } } "
    "balances { name remainingAfterDrafts } alerts { id alertType } invoices { nodes { id } } "
    f"usage(billableMetricId: $metric, {USAGE_ARGS}) {{ quantity }} }} }}"
)


async def test_a_customer_token_reads_its_own_customer(env: Env) -> None:
    graph = await build_graph(env)
    token = (await customer_token(env, graph.customer_y))["token"]
    own = await data(env, OWN_CUSTOMER, token, id=graph.customer_y, metric=graph.metric)
    assert own == {
        "customer": {
            "id": graph.customer_y,
            "name": "Y Inc",
            "contracts": [{"id": graph.contract_y}],
            "draftInvoices": [
                {
                    "total": "0.00",
                    "lines": [
                        {"type": "USAGE", "amount": "5.00"},
                        {"type": "CREDIT_APPLIED", "amount": "-5.00"},
                    ],
                }
            ],
            "balances": [{"name": "Promo", "remainingAfterDrafts": "45.00"}],
            "alerts": [],
            "invoices": {"nodes": [{"id": graph.invoice_y}]},
            "usage": [{"quantity": "500"}],
        }
    }
    # Exactly what an admin sees of the same customer.
    assert own == await data(
        env, OWN_CUSTOMER, env.read_key, id=graph.customer_y, metric=graph.metric
    )
    invoice_query = (
        "query($id: ID!) { invoice(id: $id) { id customerId billingProvider { status error } } }"
    )
    invoice = await data(env, invoice_query, token, id=graph.invoice_y)
    # why the push failed is for the organization only: null for the customer's token
    assert invoice == {
        "invoice": {
            "id": graph.invoice_y,
            "customerId": graph.customer_y,
            "billingProvider": {"status": "BILLING_PROVIDER_ERROR", "error": None},
        }
    }
    as_admin = (await data(env, invoice_query, env.read_key, id=graph.invoice_y))["invoice"]
    assert "stripe_customer_id" in as_admin["billingProvider"]["error"]
    _, variables = QUERY_PROBES["costPreview"]
    preview = (
        "query($c: ID!, $events: [EventInput!]!) { costPreview(customerId: $c, events: $events) "
        "{ invoices { preview { total lines { type amount } } totalDelta } } }"
    )
    found = await data(env, preview, token, **{**variables(graph), "c": graph.customer_y})
    (invoice_preview,) = found["costPreview"]["invoices"]
    assert invoice_preview["preview"]["lines"] == [
        {"type": "USAGE", "amount": "5.05"},
        {"type": "CREDIT_APPLIED", "amount": "-5.05"},
    ]
    assert invoice_preview["totalDelta"] == "0.00"


CREATE_ALERT = mutation("createAlert", "CreateAlertInput", "id alertType customerId")
ARCHIVE_ALERT = by_id("archiveAlert", "id archivedAt")


async def test_a_customer_token_manages_its_own_budget_alerts_only(env: Env) -> None:
    graph = await build_graph(env)
    token = (await customer_token(env, graph.customer_y))["token"]
    budgets = [
        {"alertType": "SPEND_THRESHOLD_REACHED"},
        {"alertType": "USAGE_THRESHOLD_REACHED", "billableMetricId": graph.metric},
        {"alertType": "INVOICE_TOTAL_REACHED"},
    ]
    created = []
    for budget in budgets:
        alert = {"name": "Budget", "threshold": "20", "customerId": graph.customer_y, **budget}
        found = (await data(env, CREATE_ALERT, token, input=alert))["createAlert"]
        assert (found["alertType"], found["customerId"]) == (budget["alertType"], graph.customer_y)
        created.append(found["id"])
    refused = [
        {"alertType": "LOW_CREDIT_BALANCE_REACHED", "customerId": graph.customer_y},
        {"alertType": "LOW_COMMIT_BALANCE_REACHED", "customerId": graph.customer_y},
        {"alertType": "SPEND_THRESHOLD_REACHED"},  # no customer: every customer
    ]
    for alert in refused:
        body = await gql(env, CREATE_ALERT, token, input={"name": "No", "threshold": "1", **alert})
        assert code(body) == "FORBIDDEN", alert
    own = await data(env, OWN_CUSTOMER, token, id=graph.customer_y, metric=graph.metric)
    assert sorted(a["id"] for a in own["customer"]["alerts"]) == sorted(created)
    archived = (await data(env, ARCHIVE_ALERT, token, id=created[0]))["archiveAlert"]
    assert archived["id"] == created[0] and archived["archivedAt"]
    assert code(await gql(env, ARCHIVE_ALERT, token, id=graph.alert_x)) == "NOT_FOUND"
    listed = await data(env, "{ alerts(includeArchived: true) { id archivedAt } }", env.admin_key)
    state = {alert["id"]: alert["archivedAt"] for alert in listed["alerts"]}
    assert state[graph.alert_x] is None and state[created[0]] is not None
    audit = await data(env, "{ auditLog { nodes { actor action objectId } } }", env.admin_key)
    by_token = [e for e in audit["auditLog"]["nodes"] if graph.customer_y in e["actor"]]
    assert sorted((e["action"], e["objectId"]) for e in by_token) == sorted(
        [("createAlert", alert_id) for alert_id in created] + [("archiveAlert", created[0])]
    )


async def test_read_keys_cannot_mutate_and_ingest_keys_cannot_use_graphql(env: Env) -> None:
    graph = await build_graph(env)
    before = await snapshot(env)
    read = {field: outcome(await run(env, field, graph, env.read_key)) for field in PROBES}
    assert read == {
        **{field: "OK" for field in QUERY_PROBES},
        **{field: "FORBIDDEN" for field in MUTATION_PROBES},
        "apiKeys": "FORBIDDEN",
        "auditLog": "FORBIDDEN",
        "stripeSettings": "FORBIDDEN",
    }
    ingest = {field: outcome(await run(env, field, graph, env.ingest_key)) for field in PROBES}
    assert ingest == {field: "FORBIDDEN" for field in PROBES}
    assert await snapshot(env) == before


RETRY = MUTATION_PROBES["retryInvoiceSync"][0]
PUSH_STATUS = "query($id: ID!) { invoice(id: $id) { billingProvider { status } } }"


async def test_only_the_organizations_admin_retries_the_failed_push_of_its_invoice(
    env: Env,
) -> None:
    """A's invoices' pushes to Stripe failed (their customers have no Stripe customer):
    B's admin cannot find them (exactly as if they did not exist), customer Y's token may
    not retry even its own invoice, a read key may not; A's admin can."""
    graph = await build_graph(env)
    _, other_key = await env.new_org("Other")
    token_y = (await customer_token(env, graph.customer_y))["token"]
    attempts = {
        "second organization": await gql(env, RETRY, other_key, id=graph.invoice_x),
        "customer Y, own invoice": await gql(env, RETRY, token_y, id=graph.invoice_y),
        "read key": await gql(env, RETRY, env.read_key, id=graph.invoice_x),
    }
    assert {who: outcome(body) for who, body in attempts.items()} == {
        "second organization": "NOT_FOUND",
        "customer Y, own invoice": "FORBIDDEN",
        "read key": "FORBIDDEN",
    }
    absent = await gql(env, RETRY, other_key, id="inv_doesnotexist")
    theirs = attempts["second organization"]["errors"][0]["extensions"]
    assert theirs == absent["errors"][0]["extensions"]
    for invoice_id in (graph.invoice_x, graph.invoice_y):
        found = await data(env, PUSH_STATUS, id=invoice_id)
        assert found["invoice"]["billingProvider"] == {"status": "BILLING_PROVIDER_ERROR"}
    assert await data(env, RETRY, id=graph.invoice_x) == {
        "retryInvoiceSync": {"id": graph.invoice_x, "billingProvider": {"status": "PENDING"}}
    }


async def test_an_expired_customer_token_is_unauthenticated(env: Env) -> None:
    graph = await build_graph(env)
    minted = await customer_token(env, graph.customer_y, ttl_seconds=600)
    expires_at = datetime.fromisoformat(minted["expiresAt"])
    assert expires_at == env.clock() + timedelta(seconds=600)
    own = "query($id: ID!) { customer(id: $id) { id } }"
    env.clock.set(expires_at - timedelta(seconds=1))
    assert await data(env, own, minted["token"], id=graph.customer_y) == {
        "customer": {"id": graph.customer_y}
    }
    env.clock.set(expires_at)
    outcomes = {field: outcome(await run(env, field, graph, minted["token"])) for field in PROBES}
    assert outcomes == {field: "UNAUTHENTICATED" for field in PROBES}


async def test_subscriptions_reach_nothing_beyond_the_caller(env: Env) -> None:
    """Each subscription naming customer X, over a real websocket: NOT_FOUND for another
    organization and for customer Y's token, FORBIDDEN for an ingest key, X itself for a
    read key; an expired token does not get past ``connection_init``."""
    graph = await build_graph(env)
    _, other_key = await env.new_org("Other")
    token_y = (await customer_token(env, graph.customer_y))["token"]
    expired = await customer_token(env, graph.customer_y, ttl_seconds=600)
    callers = {
        "second organization": (other_key, "NOT_FOUND"),
        "customer Y": (token_y, "NOT_FOUND"),
        "ingest key": (env.ingest_key, "FORBIDDEN"),
        "read key": (env.read_key, "OK"),
    }
    found, expected = {}, {}
    async with serving(app_of(env)) as host:
        for who, (key, expectation) in callers.items():
            for field, (query, variables) in SUBSCRIPTION_PROBES.items():
                body = await first(host, key, query, **variables(graph))
                found[who, field], expected[who, field] = outcome(body), expectation
                if expectation == "OK":  # X's own objects (a balance names its contract)
                    shown = json.dumps(body["data"])
                    assert graph.customer_x in shown or graph.contract_x in shown, body
        env.clock.set(datetime.fromisoformat(expired["expiresAt"]))
        for query, variables in SUBSCRIPTION_PROBES.values():
            with pytest.raises(TransportConnectionFailed):
                await first(host, expired["token"], query, **variables(graph))
    assert found == expected


# --- refusals read exactly like absence -----------------------------------------------------

WEBHOOK_FIELDS = (
    "webhookEndpoint", "webhookMessage", "updateWebhookEndpoint", "deleteWebhookEndpoint",
    "rotateWebhookEndpointSecret", "replayWebhookMessage", "replayFailedWebhookMessages",
)  # fmt: skip
ABSENT = {"endpoint": "whep_01absent0000000000000000", "message": "msg_01absent0000000000000000"}


def as_absent(body: dict[str, Any], graph: Graph, absent: Graph) -> list[Any]:
    """The errors of ``body`` with ``graph``'s ids written as ``absent``'s: what they would
    say of objects that do not exist, if they reveal nothing."""
    shown = json.dumps(body.get("errors"))
    for name, value in vars(graph).items():
        if getattr(absent, name) != value:
            shown = shown.replace(value, getattr(absent, name))
    found: list[Any] = json.loads(shown)
    return found


async def test_webhook_refusals_read_exactly_like_absence(env: Env) -> None:
    """Every webhook field naming A's endpoint or message, called by B's admin key and by
    customer Y's token, fails exactly as it does for ids that exist nowhere (same code,
    field, message and path), and changes nothing of A's."""
    graph = await build_graph(env)
    absent = replace(graph, **ABSENT)
    _, other_key = await env.new_org("Other")
    token_y = (await customer_token(env, graph.customer_y))["token"]
    before = await snapshot(env)
    found, expected = {}, {}
    for who, key in (("second organization", other_key), ("customer Y", token_y)):
        for field in WEBHOOK_FIELDS:
            theirs = await run(env, field, graph, key)
            nothing = await run(env, field, absent, key)
            assert theirs["data"] is None and nothing["data"] is None, (who, field)
            found[who, field] = as_absent(theirs, graph, absent)
            expected[who, field] = nothing["errors"]
            want = "NOT_FOUND" if who == "second organization" else "FORBIDDEN"
            assert codes(theirs) == [want], (who, field, theirs)
    assert found == expected
    assert await snapshot(env) == before


async def test_a_replay_cannot_join_the_organizations(env: Env) -> None:
    """B replaying its own message to A's endpoint: NOT_FOUND as for an absent endpoint;
    A's endpoint gets no delivery; B's message none either."""
    graph = await build_graph(env)
    other_org, other_key = await env.new_org("Other")
    async with env.write() as conn:
        event = WebhookEvent("customer.created", {"customer_id": "b1", "name": "B"}, None)
        own_message = await Outbox().emit(conn, other_org, event, env.clock())
    replay = MUTATION_PROBES["replayWebhookMessage"][0]
    before = await snapshot(env)
    into_a = await gql(env, replay, other_key, m=own_message, e=graph.endpoint)
    nowhere = await gql(env, replay, other_key, m=own_message, e=ABSENT["endpoint"])
    assert codes(into_a) == ["NOT_FOUND"]
    assert as_absent(into_a, graph, replace(graph, **ABSENT)) == nowhere["errors"]
    assert await snapshot(env) == before
    one = "query($id: ID!) { webhookMessage(id: $id) { deliveries { endpointId } } }"
    assert await data(env, one, other_key, id=own_message) == {"webhookMessage": {"deliveries": []}}


async def test_subscription_refusals_read_exactly_like_absence(env: Env) -> None:
    """Each subscription naming customer X, for B's key and customer Y's token, over a real
    websocket: the same error as for a customer that exists nowhere."""
    graph = await build_graph(env)
    absent = replace(graph, customer_x="cus_01absent0000000000000000")
    _, other_key = await env.new_org("Other")
    token_y = (await customer_token(env, graph.customer_y))["token"]
    found, expected = {}, {}
    async with serving(app_of(env)) as host:
        for who, key in (("second organization", other_key), ("customer Y", token_y)):
            for field, (query, variables) in SUBSCRIPTION_PROBES.items():
                theirs = await first(host, key, query, **variables(graph))
                nothing = await first(host, key, query, **variables(absent))
                assert codes(theirs) == ["NOT_FOUND"], (who, field, theirs)
                found[who, field] = as_absent(theirs, graph, absent)
                expected[who, field] = nothing["errors"]
    assert found == expected
