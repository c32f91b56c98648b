"""No N+1: a page of customers with their contracts, edits, drafts and balances costs the
same number of SQL statements for 5 customers as for 50."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from models.db import Database
from tests.api.support import create, data
from tests.conftest import Env

PAGE = """query($first: Int!) {
  customers(first: $first) {
    nodes {
      id name
      contracts { id edits { version } }
      draftInvoices { total lines { amount } }
      balances { name remainingAfterDrafts }
    }
  }
}"""
CUSTOMERS = 50
BOUND = 25


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent to the database (writer and, on SQLite, reader engine)."""
    statements: list[str] = []
    engines = {db._writer.sync_engine, db._reader.sync_engine}

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


async def fifty_customers(env: Env) -> None:
    """50 customers, each with a contract (with a credit, edited once), half with usage."""
    metric = await create(
        env,
        "createBillableMetric",
        "CreateBillableMetricInput",
        {"name": "Calls", "aggregationType": "COUNT", "eventTypeFilter": {"inValues": ["call"]}},
    )
    product = await create(
        env,
        "createProduct",
        "CreateProductInput",
        {"name": "API calls", "type": "USAGE", "billableMetricId": metric},
    )
    rate = {
        "productId": product,
        "startingAt": "2026-01-01T00:00:00Z",
        "rateType": "FLAT",
        "price": "0.50",
    }
    card = await create(
        env, "createRateCard", "CreateRateCardInput", {"name": "Card", "rates": [rate]}
    )
    edit = "mutation($input: EditContractInput!) { editContract(input: $input) { id } }"
    for index in range(CUSTOMERS):
        customer = await create(
            env,
            "createCustomer",
            "CreateCustomerInput",
            {"name": f"Customer {index:02}", "ingestAliases": [f"c{index}"]},
        )
        credit = {
            "name": "Promo",
            "amount": "1.00",
            "startingAt": "2026-04-01T00:00:00Z",
            "endingBefore": "2026-07-01T00:00:00Z",
        }
        contract = await create(
            env,
            "createContract",
            "CreateContractInput",
            {
                "customerId": customer,
                "rateCardId": card,
                "startingAt": "2026-04-01T00:00:00Z",
                "credits": [credit],
            },
        )
        update = {"contractId": contract, "updateEndDate": {"endingBefore": "2027-04-01T00:00:00Z"}}
        await data(env, edit, env.admin_key, input=update)
    events = [
        {
            "transaction_id": f"tx-{index}-{n}",
            "customer_id": f"c{index}",
            "event_type": "call",
            "timestamp": "2026-04-10T10:00:00Z",
            "properties": {},
        }
        for index in range(0, CUSTOMERS, 2)
        for n in range(3)
    ]
    assert (await env.ingest(events)).json()["accepted"] == len(events)
    await env.run_jobs()
    # the read key's first use records last_used_at (one write a minute): not counted below
    await data(env, "{ organization { id } }", env.read_key)


async def statements_for(env: Env, first: int) -> tuple[list[str], list[dict[str, Any]]]:
    with counted(env.db) as statements:
        found = await data(env, PAGE, env.read_key, first=first)
    return statements, found["customers"]["nodes"]


async def test_a_page_of_customers_costs_a_constant_number_of_queries(env: Env) -> None:
    await fifty_customers(env)
    few, small = await statements_for(env, 5)
    many, large = await statements_for(env, CUSTOMERS)
    print(
        f"\n[{env.backend.name}] SQL statements: 5 customers {len(few)}, 50 customers {len(many)}"
    )
    assert len(small) == 5 and len(large) == CUSTOMERS
    for node in large:
        (contract,) = node["contracts"]
        assert [e["version"] for e in contract["edits"]] == [1, 2]
        (draft,) = node["draftInvoices"]
        # Even customers called 3 times at 0.50; the 1.00 credit pays 1.00 of it.
        used = int(node["name"].split()[-1]) % 2 == 0
        amounts = [line["amount"] for line in draft["lines"]]
        assert amounts == (["1.50", "-1.00"] if used else []), node
        assert draft["total"] == ("0.50" if used else "0.00")
        remaining = "0.00" if used else "1.00"
        assert node["balances"] == [{"name": "Promo", "remainingAfterDrafts": remaining}]
    assert len(many) == len(few), "\n".join(many)
    assert len(many) <= BOUND, "\n".join(many)


LISTS = """query($first: Int!) {
  customers(first: $first) { nodes { id invoices { nodes { id } } alerts { id } } }
}"""


async def test_invoices_and_alerts_of_a_page_of_customers_cost_a_constant_number_of_queries(
    env: Env,
) -> None:
    await fifty_customers(env)
    counts = {}
    for first in (5, CUSTOMERS):
        with counted(env.db) as statements:
            found = await data(env, LISTS, env.read_key, first=first)
        assert len(found["customers"]["nodes"]) == first
        counts[first] = len(statements)
    print(f"\n[{env.backend.name}] invoices and alerts of 5 / 50 customers: {counts}")
    assert counts[CUSTOMERS] == counts[5] <= BOUND
