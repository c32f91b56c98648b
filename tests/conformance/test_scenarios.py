"""The shared conformance scenarios, driven only through the public interfaces: GraphQL
mutations to set up, `POST /v1/ingest` for events, GraphQL queries to read back."""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import post
from tests.conftest import Env

SCENARIOS = Path(
    os.environ.get(
        "METERLINE_SCENARIOS", Path(__file__).resolve().parents[2].parent / "shared" / "scenarios"
    )
)
SCENARIO_FILES = {
    path.stem: json.loads(path.read_text()) for path in sorted(SCENARIOS.glob("*.json"))
}

# Setup kind → (mutation, input type), in the order the scenarios README creates them.
SETUP = {
    "billable_metrics": ("createBillableMetric", "CreateBillableMetricInput"),
    "products": ("createProduct", "CreateProductInput"),
    "rate_cards": ("createRateCard", "CreateRateCardInput"),
    "customers": ("createCustomer", "CreateCustomerInput"),
    "contracts": ("createContract", "CreateContractInput"),
    "alerts": ("createAlert", "CreateAlertInput"),
    "webhook_endpoints": ("createWebhookEndpoint", "CreateWebhookEndpointInput"),
}
MESSAGES = """query($after: String) { webhookMessages(first: 100, after: $after) {
  nodes { id type payload } pageInfo { hasNextPage endCursor } } }"""
# Scenario field holding ref(s) → (kind of the referenced object, GraphQL id field).
REFS = {
    "billable_metric": ("billable_metrics", "billableMetricId"),
    "product": ("products", "productId"),
    "composite_products": ("products", "compositeProductIds"),
    "applicable_products": ("products", "applicableProductIds"),
    "rate_card": ("rate_cards", "rateCardId"),
    "customer": ("customers", "customerId"),
    "contract": ("contracts", "contractId"),
    "alert": ("alerts", "alertId"),
}
ENUMS = {
    "aggregation_type",
    "alert_type",
    "billing_anchor",
    "billing_frequency",
    "frequency",
    "operation",
    "rate_type",
    "rounding_method",
    "tier_mode",
    "type",
}
JSON_VALUES = {"custom_fields", "group_values", "pricing_group_values"}  # keys kept as given
DECIMALS = {"amount", "quantity", "unit_price", "subtotal", "total", "remaining_after_drafts"}

LINE = (
    "type productId name quantity unitPrice amount group tiers { startingAt quantity price amount }"
)
INVOICE = f"""contractId startingAt endingBefore status lateEvents subtotal total
  lines {{ {LINE} }} unratedUsage {{ productId group quantity reason }}"""


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def to_input(value: Any, ids: dict[str, dict[str, str]]) -> Any:
    """A scenario object as a GraphQL input: camelCase keys, UPPER_CASE enums, refs → ids."""
    if isinstance(value, list):
        return [to_input(item, ids) for item in value]
    if not isinstance(value, dict):
        return value
    converted = {}
    for key, item in value.items():
        if key in REFS:
            kind, field = REFS[key]
            converted[field] = (
                [ids[kind][ref] for ref in item] if isinstance(item, list) else ids[kind][item]
            )
        elif key in ENUMS:
            converted[camel(key)] = item.upper()
        elif key in JSON_VALUES:
            converted[camel(key)] = item
        else:
            converted[camel(key)] = to_input(item, ids)
    return converted


def norm(field: str, value: Any) -> Any:
    """A value in the form it is compared in: decimals as Decimal, times as datetime."""
    if value is None:
        return None
    if field in DECIMALS:
        return Decimal(value)
    if field == "period_ending_before":
        return moment(value)
    if field == "tiers":
        return [{key: Decimal(number) for key, number in tier.items()} for tier in value]
    return value


def fits(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    return all(norm(key, value) == norm(key, actual.get(key)) for key, value in expected.items())


def unmatched_rows(
    expected: list[dict[str, Any]], actual: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pair each expected row with a distinct actual row it fits (a maximum bipartite
    matching, so a loose expectation never steals the row a stricter one needs); return
    the expected rows left unpaired and the actual rows left over that are not zero."""
    candidates = [[j for j, row in enumerate(actual) if fits(want, row)] for want in expected]
    paired: dict[int, int] = {}  # actual index → expected index

    def pair(i: int, seen: set[int]) -> bool:
        for j in candidates[i]:
            if j not in seen:
                seen.add(j)
                if j not in paired or pair(paired[j], seen):
                    paired[j] = i
                    return True
        return False

    missing = [want for i, want in enumerate(expected) if not pair(i, set())]
    extra = [
        row
        for j, row in enumerate(actual)
        if j not in paired and (Decimal(row["quantity"]), Decimal(row.get("amount", 0))) != (0, 0)
    ]
    return missing, extra


class Run:
    """One scenario against one app: the ids of the objects it created, by kind and ref."""

    def __init__(self, env: Env, scenario: dict[str, Any], name: str) -> None:
        self.env, self.scenario, self.name = env, scenario, name
        self.ids: dict[str, dict[str, str]] = {kind: {} for kind in SETUP}
        self.where = f"{name} setup"
        self.ingested: dict[str, Any] | None = None
        self.emitted: list[dict[str, Any]] = []

    async def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await post(self.env, query, **variables)
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, (
            f"{self.where}: GraphQL {query.split('{')[0].strip()} {variables}: {response.text}"
        )
        data: dict[str, Any] = body["data"]
        return data

    async def customer(self, ref: str, selection: str) -> dict[str, Any]:
        query = f"query($id: ID!) {{ customer(id: $id) {{ {selection} }} }}"
        return (await self.gql(query, id=self.ids["customers"][ref]))["customer"]

    def ref_of(self, kind: str, object_id: str | None) -> str | None:
        return next((ref for ref, i in self.ids[kind].items() if i == object_id), object_id)

    async def set_up(self) -> None:
        setup = self.scenario["setup"]
        unknown = set(setup) - set(SETUP)
        assert not unknown, f"{self.where}: no public API creates {sorted(unknown)}"
        for kind, (mutation, input_type) in SETUP.items():
            query = f"mutation($input: {input_type}!) {{ {mutation}(input: $input) {{ id }} }}"
            for obj in setup.get(kind, []):
                fields = {key: value for key, value in obj.items() if key != "ref"}
                data = await self.gql(query, input=to_input(fields, self.ids))
                self.ids[kind][obj["ref"]] = data[mutation]["id"]

    async def step(self, number: int, step: dict[str, Any]) -> None:
        self.where = f"{self.name} step {number} (now {step['now']})"
        self.env.clock.set(moment(step["now"]))
        seen = {message["id"] for message in await self.messages()}
        await self.env.run_jobs()
        self.ingested = None
        if events := step.get("events"):
            response = await self.env.ingest([self.resolve(event) for event in events])
            assert response.status_code == 200, f"{self.where}: ingest: {response.text}"
            self.ingested = response.json()
        await self.env.run_jobs()
        self.emitted = [m["payload"] for m in await self.messages() if m["id"] not in seen]
        for key, expected in step.get("expect", {}).items():
            assert key in CHECKS, f"{self.where}: unknown expectation {key!r}"
            await CHECKS[key](self, expected)

    def resolve(self, event: dict[str, Any]) -> dict[str, Any]:
        customer = event.get("customer_id")
        if isinstance(customer, str) and customer.startswith("ref:"):
            return {**event, "customer_id": self.ids["customers"][customer.removeprefix("ref:")]}
        return event

    async def check_ingest(self, expected: dict[str, Any]) -> None:
        body = self.ingested
        assert body is not None, f"{self.where}: an ingest expectation but no events were sent"
        actual = {
            "accepted": body["accepted"],
            "duplicates": len(body["duplicates"]),
            "rejected": [{"index": r["index"], "code": r["code"]} for r in body["rejected"]],
            "warnings": [{"index": w["index"], "code": w["code"]} for w in body["warnings"]],
        }
        for key, value in expected.items():
            assert actual[key] == value, (
                f"{self.where}: ingest {key}: expected {value}, got {actual[key]}; response {body}"
            )

    async def check_draft_invoices(self, expected: list[dict[str, Any]]) -> None:
        for want in expected:
            customer = self.owner(want["contract"])
            invoices = await self.customer(customer, f"draftInvoices {{ {INVOICE} }}")
            self.check_invoice("draft", want, invoices["draftInvoices"])

    async def check_finalized_invoices(self, expected: list[dict[str, Any]]) -> None:
        for want in expected:
            customer = self.owner(want["contract"])
            invoices = await self.customer(customer, f"invoices {{ nodes {{ {INVOICE} }} }}")
            self.check_invoice("finalized", want, invoices["invoices"]["nodes"])

    def owner(self, contract: str) -> str:
        return next(
            c["customer"] for c in self.scenario["setup"]["contracts"] if c["ref"] == contract
        )

    def check_invoice(
        self, kind: str, want: dict[str, Any], invoices: list[dict[str, Any]]
    ) -> None:
        label = (
            f"{self.where}: {kind} invoice of {want['contract']} from {want['period_starting_at']}"
        )
        found = [
            invoice
            for invoice in invoices
            if invoice["contractId"] == self.ids["contracts"][want["contract"]]
            and moment(invoice["startingAt"]) == moment(want["period_starting_at"])
        ]
        assert len(found) == 1, f"{label}: {len(found)} such invoices among {invoices}"
        actual = self.spec_invoice(found[0])
        for key, value in want.items():
            if key in ("contract", "period_starting_at"):
                continue
            if key in ("lines", "unrated_usage"):
                missing, extra = unmatched_rows(value, actual[key])
                assert not missing and not extra, (
                    f"{label}: {key}: expected but absent {missing}; unexpected {extra}; "
                    f"all actual {actual[key]}"
                )
            else:
                assert key in actual, f"{label}: unknown invoice field {key!r}"
                assert norm(key, value) == norm(key, actual[key]), (
                    f"{label}: {key}: expected {value}, got {actual[key]}"
                )

    def spec_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        """An invoice read back through GraphQL, in the scenario files' vocabulary."""
        return {
            "period_ending_before": invoice["endingBefore"],
            "status": invoice["status"].lower(),
            "late_events": invoice["lateEvents"],
            "subtotal": invoice["subtotal"],
            "total": invoice["total"],
            "lines": [
                {
                    "type": line["type"].lower(),
                    "product": self.ref_of("products", line["productId"]),
                    "name": line["name"],
                    "group": line["group"],
                    "quantity": line["quantity"],
                    "unit_price": line["unitPrice"],
                    "amount": line["amount"],
                    "tiers": [
                        {
                            "starting_at": t["startingAt"],
                            **{k: t[k] for k in ("quantity", "price", "amount")},
                        }
                        for t in line["tiers"]
                    ],
                }
                for line in invoice["lines"]
            ],
            "unrated_usage": [
                {
                    "product": self.ref_of("products", row["productId"]),
                    "group": row["group"],
                    "quantity": row["quantity"],
                    "reason": row["reason"].lower(),
                }
                for row in invoice["unratedUsage"]
            ],
        }

    async def check_balances(self, expected: list[dict[str, Any]]) -> None:
        now = self.env.clock()
        for want in expected:
            data = await self.customer(
                want["customer"], "balances { name startingAt endingBefore remainingAfterDrafts }"
            )
            # A recurring credit is one balance per period, all with the credit's name (and a
            # closed period's segment is still listed while its draft draws it): the balance the
            # scenario means is the segment live at `now`.
            live = [
                b
                for b in data["balances"]
                if b["name"] == want["name"]
                and moment(b["startingAt"]) <= now < moment(b["endingBefore"])
            ]
            label = f"{self.where}: balance {want['name']!r} of {want['customer']}"
            assert len(live) == 1, f"{label}: {len(live)} live at now among {data['balances']}"
            actual = live[0]["remainingAfterDrafts"]
            assert Decimal(actual) == Decimal(want["remaining_after_drafts"]), (
                f"{label}: remaining after drafts: expected {want['remaining_after_drafts']}, "
                f"got {actual}"
            )

    async def check_alert_states(self, expected: list[dict[str, Any]]) -> None:
        for want in expected:
            data = await self.customer(
                want["customer"], "alerts { id statuses { customerId group state } }"
            )
            alert_id = self.ids["alerts"][want["alert"]]
            customer_id = self.ids["customers"][want["customer"]]
            group = want.get("group", {})
            states = [
                status["state"].lower()
                for alert in data["alerts"]
                if alert["id"] == alert_id
                for status in alert["statuses"]
                if status["customerId"] == customer_id and status["group"] == group
            ]
            assert states == [want["state"]], (
                f"{self.where}: alert {want['alert']} for {want['customer']} {group}: "
                f"expected {want['state']}, got {states} among {data['alerts']}"
            )

    async def messages(self) -> list[dict[str, Any]]:
        """Every webhook message of the organization, through ``webhookMessages``."""
        found: list[dict[str, Any]] = []
        after = None
        while True:
            page = (await self.gql(MESSAGES, after=after))["webhookMessages"]
            found += page["nodes"]
            if not page["pageInfo"]["hasNextPage"]:
                return found
            after = page["pageInfo"]["endCursor"]

    async def check_webhooks(self, expected: list[dict[str, Any]]) -> None:
        compared = [m for m in self.emitted if m["type"].split(".")[0] in ("alert", "invoice")]
        actual = [
            {
                "type": m["type"],
                "alert": self.ref_of("alerts", m["data"].get("alert_id")),
                "customer": self.ref_of("customers", m["data"].get("customer_id")),
                "contract": self.ref_of("contracts", m["data"].get("contract_id")),
                "group": m["data"].get("group", {}),
            }
            for m in compared
        ]
        extra = list(actual)
        missing = []
        for want in expected:
            want = {"group": {}, **want} if want["type"].startswith("alert.") else want
            found = next((a for a in extra if all(a[k] == v for k, v in want.items())), None)
            if found is None:
                missing.append(want)
            else:
                extra.remove(found)
        assert not missing and not extra, (
            f"{self.where}: webhooks: missing {missing}, unexpected {extra} among {actual}"
        )


CHECKS = {
    "ingest": Run.check_ingest,
    "draft_invoices": Run.check_draft_invoices,
    "finalized_invoices": Run.check_finalized_invoices,
    "balances": Run.check_balances,
    "alert_states": Run.check_alert_states,
    "webhooks": Run.check_webhooks,
}


def test_scenarios_are_present() -> None:
    assert SCENARIO_FILES, f"no scenario files in {SCENARIOS}"


@pytest.mark.parametrize("name", list(SCENARIO_FILES), ids=list(SCENARIO_FILES))
async def test_scenario(env: Env, name: str) -> None:
    run = Run(env, SCENARIO_FILES[name], name)
    await run.set_up()
    for number, step in enumerate(run.scenario["steps"], 1):
        await run.step(number, step)
