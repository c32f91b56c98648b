"""Draft invoices, balances, the usage chart, cost previews and stored invoices through
GraphQL (SPEC §4, §6). Every expected figure is worked out by hand in the test."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import (
    APRIL,
    INVOICE,
    MAY,
    amounts,
    balances,
    code_of,
    contract,
    customer,
    data,
    draft,
    edit,
    failure,
    llm,
    metric,
    product,
    rate,
    rate_card,
    send,
    shop,
)
from tests.conftest import Env

MARCH = "2026-03-01T00:00:00Z"
USAGE = """
query($id: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!, $window: UsageWindow!,
      $groupKey: [String!]) {
  customer(id: $id) {
    usage(billableMetricId: $metric, startingAt: $from, endingBefore: $to,
          windowSize: $window, groupKey: $groupKey) {
      startingAt endingBefore group quantity
    }
  }
}"""
PREVIEW = f"""
query($id: ID!, $events: [EventInput!]!, $mode: PreviewMode!) {{
  costPreview(customerId: $id, events: $events, mode: $mode) {{
    mode
    invoices {{
      current {{ {INVOICE} }}
      preview {{ {INVOICE} }}
      lines {{
        type productId name group startingAt quantityBefore quantityAfter amountBefore
        amountAfter amountDelta
      }}
      subtotalDelta totalDelta
    }}
  }}
}}"""
INVOICE_BY_ID = "query($id: ID!) { invoice(id: $id) { id status } }"
INVOICES = """
query($id: ID!) {
  customer(id: $id) {
    invoices(first: 10) { nodes { id } edges { cursor } pageInfo { hasNextPage endCursor } }
    draftInvoices { id status lateEvents finalizedAt voidedAt replacesInvoiceId }
  }
}"""


def hypothetical(tx: str, tokens: Any, at: str = "2026-04-10T10:00:00Z", **extra: Any) -> Any:
    """An EventInput (camelCase, no customer: the preview's customer is implied)."""
    return {
        "transactionId": tx,
        "eventType": "llm",
        "timestamp": at,
        "properties": {"tokens": tokens, "model": "gpt", **extra},
    }


async def test_a_draft_prices_usage_and_lists_what_it_cannot_price(env: Env) -> None:
    metric_id = await metric(env)
    by_model = await product(env, "Tokens", billableMetricId=metric_id, pricingGroupKey=["model"])
    off_card = await product(env, "Legacy", billableMetricId=metric_id)
    future = await product(env, "Next", billableMetricId=metric_id)
    barred = await product(env, "Barred", billableMetricId=metric_id)
    card_id = await rate_card(
        env,
        rate(by_model, "0.01", pricingGroupValues={"model": "gpt"}),
        rate(by_model, "0.02", pricingGroupValues={"model": "claude"}),
        rate(future, "1", MAY),
        rate(barred, "1", entitled=False),
    )
    customer_id = await customer(env, "Acme", ["acme"])
    created = await contract(env, customer_id, card_id)
    await send(
        env,
        llm("t1", "acme", 60, "gpt"),
        llm("t2", "acme", 40, "gpt"),
        llm("t3", "acme", 50, "claude"),
        llm("t4", "acme", 10, "llama"),
    )
    invoice = await draft(env, customer_id)
    assert (invoice["contractId"], invoice["customerId"]) == (created["id"], customer_id)
    assert (invoice["status"], invoice["currency"]) == ("DRAFT", "USD")
    assert (invoice["startingAt"], invoice["endingBefore"]) == (APRIL, MAY)
    lines = [
        (line["type"], line["productId"], line["name"], line["group"], line["quantity"],
         line["unitPrice"], line["amount"])
        for line in invoice["lines"]
    ]  # fmt: skip
    assert lines == [
        ("USAGE", by_model, "Tokens", {"model": "claude"}, "50", "0.02", "1.00"),
        ("USAGE", by_model, "Tokens", {"model": "gpt"}, "100", "0.01", "1.00"),
    ]
    assert all(
        (line["startingAt"], line["endingBefore"]) == (APRIL, MAY) for line in invoice["lines"]
    )
    unrated = {
        (u["productId"], u["reason"]): (u["group"], u["quantity"]) for u in invoice["unratedUsage"]
    }
    assert unrated == {
        (by_model, "NO_RATE_FOR_GROUP_VALUES"): ({"model": "llama"}, "10"),
        (off_card, "NOT_ON_RATE_CARD"): ({}, "160"),
        (future, "NO_RATE_IN_FORCE"): ({}, "160"),
        (barred, "NOT_ENTITLED"): ({}, "160"),
    }
    assert (invoice["subtotal"], invoice["total"]) == ("2.00", "2.00")


async def test_a_draft_without_usage_is_empty_and_zero(env: Env) -> None:
    world = await shop(env)
    invoice = await draft(env, world.customer_id)
    assert (invoice["lines"], invoice["unratedUsage"]) == ([], [])
    assert (invoice["subtotal"], invoice["total"]) == ("0.00", "0.00")


async def test_balances_show_the_ledger_and_what_the_draft_would_draw(env: Env) -> None:
    world = await shop(env, price="0.01", rate_from=MARCH, startingAt=MARCH)
    fee = await product(env, "Fee", "FIXED")
    expired = {"name": "March", "amount": "5", "startingAt": MARCH, "endingBefore": APRIL}
    credit = {"name": "April", "amount": "10", "startingAt": APRIL, "endingBefore": MAY}
    upcoming = {
        "name": "May",
        "amount": "7",
        "startingAt": MAY,
        "endingBefore": "2026-06-01T00:00:00Z",
    }
    commit = {
        "name": "Prepaid",
        "productId": fee,
        "type": "PREPAID",
        "amount": "100",
        "startingAt": APRIL,
        "endingBefore": "2027-04-01T00:00:00Z",
    }
    edited = await edit(
        env, world.contract_id, addCredits=[expired, credit, upcoming], addCommits=[commit]
    )
    ids = {c["name"]: c["id"] for c in [*edited["credits"], *edited["commits"]]}
    await send(env, llm("t1", "acme", 1400))

    # 1400 tokens x $0.01 = 14.00: the credit draws 10 first, the prepaid commit the rest
    invoice = await draft(env, world.customer_id)
    assert amounts(invoice) == [
        ("USAGE", "14.00"),
        ("COMMIT_PURCHASE", "100.00"),
        ("CREDIT_APPLIED", "-10.00"),
        ("COMMIT_APPLIED", "-4.00"),
    ]
    assert (invoice["subtotal"], invoice["total"]) == ("114.00", "100.00")

    live = {b["name"]: b for b in await balances(env, world.customer_id)}
    assert sorted(live) == ["April", "Prepaid"]
    april, prepaid = live["April"], live["Prepaid"]
    assert (april["id"], april["kind"], april["amount"]) == (ids["April"], "CREDIT", "10")
    assert (prepaid["id"], prepaid["kind"], prepaid["productId"]) == (
        ids["Prepaid"],
        "PREPAID_COMMIT",
        fee,
    )
    assert [(e["type"], e["amount"], e["timestamp"], e["invoiceId"]) for e in april["ledger"]] == [
        ("SEGMENT_START", "10", APRIL, None)
    ]
    assert [(e["type"], e["amount"]) for e in prepaid["ledger"]] == [("SEGMENT_START", "100")]
    figures = {
        name: (b["ledgerBalance"], b["pendingDraftDeduction"], b["remainingAfterDrafts"])
        for name, b in live.items()
    }
    assert figures == {"April": ("10", "10.00", "0.00"), "Prepaid": ("100", "4.00", "96.00")}

    # the expired March credit shows on request; the May credit has not started yet
    every = {b["name"]: b for b in await balances(env, world.customer_id, expired=True)}
    assert sorted(every) == ["April", "March", "Prepaid"]
    march = every["March"]
    assert (march["ledgerBalance"], march["pendingDraftDeduction"]) == ("5", "0")


async def test_a_recurring_credit_has_one_balance_per_period(env: Env) -> None:
    world = await shop(env, price="0.01")
    monthly = {"name": "Monthly", "amount": "9", "frequency": "MONTHLY", "startingAt": APRIL}
    recurring_id = (await edit(env, world.contract_id, addRecurringCredits=[monthly]))[
        "recurringCredits"
    ][0]["id"]
    await send(env, llm("t1", "acme", 500))
    (balance,) = await balances(env, world.customer_id)
    assert balance["sourceId"] == recurring_id and balance["id"] != recurring_id
    assert (balance["startingAt"], balance["endingBefore"]) == (APRIL, MAY)
    assert (balance["pendingDraftDeduction"], balance["remainingAfterDrafts"]) == ("5.00", "4.00")
    assert amounts(await draft(env, world.customer_id)) == [
        ("USAGE", "5.00"),
        ("CREDIT_APPLIED", "-5.00"),
    ]


async def _usage(env: Env, customer_id: str, metric_id: str, **arguments: Any) -> Any:
    found = await data(env, USAGE, id=customer_id, metric=metric_id, **arguments)
    return [
        (p["startingAt"][5:16], p["endingBefore"][5:16], p["group"], p["quantity"])
        for p in found["customer"]["usage"]
    ]


async def test_the_usage_chart_sums_each_hour_or_day(env: Env) -> None:
    metric_id = await metric(env)
    customer_id = await customer(env, "Acme", ["acme"])
    await send(
        env,
        llm("t1", "acme", 10, "gpt", "2026-04-09T10:15:00Z"),
        llm("t2", "acme", 5, "gpt", "2026-04-09T10:45:00Z"),
        llm("t3", "acme", 7, "claude", "2026-04-09T10:50:00Z"),
        llm("t4", "acme", 1, "gpt", "2026-04-09T13:00:00Z"),
        llm("t5", "acme", 100, "claude", "2026-04-10T09:00:00Z"),
        llm("t6", "acme", 1000, "gpt", "2026-03-31T23:30:00Z"),
        llm("t7", "someone-else", 99999, "gpt", "2026-04-09T10:20:00Z"),
    )
    hourly = {"from": "2026-04-09T10:00:00Z", "to": "2026-04-09T14:00:00Z", "window": "HOUR"}
    assert await _usage(env, customer_id, metric_id, **hourly, groupKey=None) == [
        ("04-09T10:00", "04-09T11:00", {}, "22"),
        ("04-09T13:00", "04-09T14:00", {}, "1"),
    ]
    assert await _usage(env, customer_id, metric_id, **hourly, groupKey=["model"]) == [
        ("04-09T10:00", "04-09T11:00", {"model": "claude"}, "7"),
        ("04-09T10:00", "04-09T11:00", {"model": "gpt"}, "15"),
        ("04-09T13:00", "04-09T14:00", {"model": "gpt"}, "1"),
    ]
    # a window starting mid-hour counts only that hour's events inside it
    cut = {**hourly, "from": "2026-04-09T10:30:00Z"}
    assert await _usage(env, customer_id, metric_id, **cut, groupKey=None) == [
        ("04-09T10:00", "04-09T11:00", {}, "12"),
        ("04-09T13:00", "04-09T14:00", {}, "1"),
    ]
    daily = {"from": "2026-03-31T00:00:00Z", "to": "2026-04-11T00:00:00Z", "window": "DAY"}
    assert await _usage(env, customer_id, metric_id, **daily, groupKey=None) == [
        ("03-31T00:00", "04-01T00:00", {}, "1000"),
        ("04-09T00:00", "04-10T00:00", {}, "23"),
        ("04-10T00:00", "04-11T00:00", {}, "100"),
    ]
    assert await _usage(env, customer_id, metric_id, **daily, groupKey=["model"]) == [
        ("03-31T00:00", "04-01T00:00", {"model": "gpt"}, "1000"),
        ("04-09T00:00", "04-10T00:00", {"model": "claude"}, "7"),
        ("04-09T00:00", "04-10T00:00", {"model": "gpt"}, "16"),
        ("04-10T00:00", "04-11T00:00", {"model": "claude"}, "100"),
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"from": "2026-04-09T00:00:00Z", "to": "2026-04-09T00:00:00Z"}, "ending_before"),
        ({"from": "2026-04-09T00:00:00Z", "to": "2026-04-08T00:00:00Z"}, "ending_before"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-04-02T00:00:00Z", "window": "HOUR"},
         "ending_before"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-04-02T00:00:00Z"}, "ending_before"),
        ({"groupKey": ["region"]}, "group_key"),
        ({"metric": "bm_nope"}, "billable_metric_id"),
    ],
)  # fmt: skip
async def test_the_usage_chart_validates_its_window(
    env: Env, arguments: dict[str, Any], field: str
) -> None:
    metric_id = await metric(env)
    customer_id = await customer(env)
    query = {
        "id": customer_id,
        "metric": metric_id,
        "from": "2026-04-01T00:00:00Z",
        "to": "2026-04-02T00:00:00Z",
        "window": "DAY",
        "groupKey": None,
        **arguments,
    }
    assert await failure(env, USAGE, **query) == {"code": "VALIDATION", "field": field}


async def test_a_month_of_hours_is_allowed(env: Env) -> None:
    world = await shop(env)
    await send(env, llm("t1", "acme", 3, at="2026-04-10T11:59:59Z"))
    found = await _usage(
        env,
        world.customer_id,
        world.metric_id,
        **{"from": "2026-03-12T00:00:00Z", "to": "2026-04-12T00:00:00Z", "window": "HOUR"},
        groupKey=None,
    )
    assert found == [("04-10T11:00", "04-10T12:00", {}, "3")]


async def _preview(env: Env, customer_id: str, events: list[Any], mode: str) -> Any:
    found = (await data(env, PREVIEW, id=customer_id, events=events, mode=mode))["costPreview"]
    assert found["mode"] == mode
    (only,) = found["invoices"]
    return only


def _deltas(preview: Any) -> list[tuple[str, ...]]:
    return [
        (d["type"], d["quantityBefore"], d["quantityAfter"], d["amountBefore"], d["amountAfter"],
         d["amountDelta"])
        for d in preview["lines"]
    ]  # fmt: skip


async def test_cost_preview_merges_or_replaces_the_periods_events(env: Env) -> None:
    world = await shop(env, price="0.01")
    credit = {"name": "Top-up", "amount": "1.20", "startingAt": APRIL, "endingBefore": MAY}
    await edit(env, world.contract_id, addCredits=[credit])
    await send(env, llm("t1", "acme", 100))
    before = await draft(env, world.customer_id)
    events = [
        hypothetical("h1", 50),
        hypothetical("h2", 1000, at="2026-03-15T00:00:00Z"),  # outside the open period
        {**hypothetical("h3", 1000), "eventType": "other"},  # matches no metric
    ]

    # merge: 150 tokens = 1.50, the whole 1.20 credit applies
    merged = await _preview(env, world.customer_id, events, "MERGE")
    assert merged["current"] == before
    assert amounts(merged["preview"]) == [("USAGE", "1.50"), ("CREDIT_APPLIED", "-1.20")]
    assert (merged["preview"]["subtotal"], merged["preview"]["total"]) == ("1.50", "0.30")
    assert _deltas(merged) == [
        ("USAGE", "100", "150", "1.00", "1.50", "0.50"),
        ("CREDIT_APPLIED", "1", "1", "-1.00", "-1.20", "-0.20"),
    ]
    assert (merged["subtotalDelta"], merged["totalDelta"]) == ("0.50", "0.30")

    # replace: only the 50 hypothetical tokens = 0.50, covered by the credit
    replaced = await _preview(env, world.customer_id, events, "REPLACE")
    assert amounts(replaced["preview"]) == [("USAGE", "0.50"), ("CREDIT_APPLIED", "-0.50")]
    assert _deltas(replaced) == [
        ("USAGE", "100", "50", "1.00", "0.50", "-0.50"),
        ("CREDIT_APPLIED", "1", "1", "-1.00", "-0.50", "0.50"),
    ]
    assert (replaced["subtotalDelta"], replaced["totalDelta"]) == ("-0.50", "0.00")

    # replacing with nothing empties the usage; nothing was stored by any preview
    emptied = await _preview(env, world.customer_id, [], "REPLACE")
    assert (emptied["preview"]["lines"], emptied["preview"]["total"]) == ([], "0.00")
    assert (emptied["subtotalDelta"], emptied["totalDelta"]) == ("-1.00", "0.00")
    assert await draft(env, world.customer_id) == before
    found = await data(env, '{ searchEvents(transactionIds: ["h1"]) { transactionId } }')
    assert found["searchEvents"] == []


async def test_cost_preview_of_a_new_group_adds_a_line(env: Env) -> None:
    metric_id = await metric(env)
    tokens = await product(env, "Tokens", billableMetricId=metric_id, pricingGroupKey=["model"])
    card_id = await rate_card(
        env,
        rate(tokens, "0.01", pricingGroupValues={"model": "gpt"}),
        rate(tokens, "0.03", pricingGroupValues={"model": "claude"}),
    )
    customer_id = await customer(env, "Acme", ["acme"])
    await contract(env, customer_id, card_id)
    await send(env, llm("t1", "acme", 100, "gpt"))
    merged = await _preview(
        env,
        customer_id,
        [{**hypothetical("h1", "10"), "properties": {"tokens": 10, "model": "claude"}}],
        "MERGE",
    )
    (delta,) = merged["lines"]
    assert (delta["type"], delta["productId"], delta["group"]) == (
        "USAGE",
        tokens,
        {"model": "claude"},
    )
    assert (delta["quantityBefore"], delta["quantityAfter"], delta["amountDelta"]) == (
        "0",
        "10",
        "0.30",
    )
    assert (merged["subtotalDelta"], merged["totalDelta"]) == ("0.30", "0.30")


@pytest.mark.parametrize(
    "properties",
    [{"tokens": {"value": 5}, "model": "gpt"}, {"tokens": [5], "model": "gpt"}],
)
async def test_cost_preview_refuses_nested_properties(env: Env, properties: Any) -> None:
    world = await shop(env)
    events = [hypothetical("h1", 1), {**hypothetical("h2", 1), "properties": properties}]
    extensions = await failure(env, PREVIEW, id=world.customer_id, events=events, mode="MERGE")
    assert extensions == {"code": "VALIDATION", "field": "events[1].properties"}


async def test_cost_preview_of_an_unknown_customer_is_not_found(env: Env) -> None:
    code = await code_of(env, PREVIEW, id="cus_nope", events=[], mode="MERGE")
    assert code == "NOT_FOUND"


async def test_a_customer_without_contracts_previews_nothing(env: Env) -> None:
    customer_id = await customer(env)
    found = await data(env, PREVIEW, id=customer_id, events=[hypothetical("h", 1)], mode="MERGE")
    assert found["costPreview"] == {"mode": "MERGE", "invoices": []}


async def test_no_invoice_is_stored_before_finalization(env: Env) -> None:
    world = await shop(env)
    await send(env, llm("t1", "acme", 100))
    assert await code_of(env, INVOICE_BY_ID, id="inv_nope") == "NOT_FOUND"
    found = (await data(env, INVOICES, id=world.customer_id))["customer"]
    assert found["invoices"] == {
        "nodes": [],
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    assert found["draftInvoices"] == [
        {
            "id": None,
            "status": "DRAFT",
            "lateEvents": 0,
            "finalizedAt": None,
            "voidedAt": None,
            "replacesInvoiceId": None,
        }
    ]


async def test_an_unknown_customer_has_no_drafts(env: Env) -> None:
    code = await code_of(
        env, "query($id: ID!) { customer(id: $id) { draftInvoices { total } } }", id="cus_nope"
    )
    assert code == "NOT_FOUND"
