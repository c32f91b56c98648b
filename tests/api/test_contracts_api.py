"""Contracts through GraphQL (SPEC §5): terms, edits and their history, archiving, and
packages (contract templates with ISO-8601 offsets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.support import (
    APRIL,
    CONTRACT,
    CREATE_CONTRACT,
    EDIT_CONTRACT,
    MAY,
    admin_key_id,
    amounts,
    balances,
    code_of,
    contract,
    customer,
    data,
    draft,
    drafts,
    edit,
    failure,
    llm,
    product,
    rate,
    send,
    shop,
)
from tests.conftest import Env

GET = f"query($id: ID!) {{ contract(id: $id) {{ {CONTRACT} }} }}"
EDITS = "query($id: ID!) { contract(id: $id) { edits { version kind changes actor createdAt } } }"
ARCHIVE = "mutation($id: ID!) { archiveContract(id: $id) { id archivedAt } }"
LIST = """
query($customer: ID, $all: Boolean!) {
  contracts(customerId: $customer, includeArchived: $all) { nodes { id archivedAt } }
}"""
CUSTOMER_CONTRACTS = "query($id: ID!) { customer(id: $id) { contracts { id } } }"
ADD_RATES = "mutation($input: AddRatesInput!) { addRates(input: $input) { id } }"
CREATE_PACKAGE = """
mutation($input: CreatePackageInput!) {
  createPackage(input: $input) {
    id name rateCardId billingFrequency billingAnchor netPaymentTermsDays duration archivedAt
    credits { name amount startingOffset endingOffset priority applicableProductIds }
    recurringCredits { name amount frequency startingOffset endingOffset }
    commits { name productId type amount startingOffset endingOffset invoiceOffset }
    subscriptions { productId quantity startingOffset proration }
  }
}"""
FROM_PACKAGE = f"""
mutation($input: CreateContractFromPackageInput!) {{
  createContractFromPackage(input: $input) {{ {CONTRACT} }}
}}"""
PACKAGES = "{ packages { nodes { id name } pageInfo { hasNextPage } } }"
YEAR_LATER = "2027-04-01T00:00:00Z"
W_SEATS = "<the seats product>"


@dataclass(frozen=True)
class World:
    """A customer (alias ``acme``) whose rate card prices tokens at $0.01 and seats at $20
    a month, with a fixed product for fees and commits."""

    customer_id: str
    rate_card_id: str
    tokens: str
    seats: str
    fee: str


async def world(env: Env) -> World:
    found = await shop(env, price="0.01", rate_from=APRIL)
    await data(env, ARCHIVE, id=found.contract_id)  # the tests make their own contracts
    seats = await product(env, "Seats", "SUBSCRIPTION")
    fee = await product(env, "Fee", "FIXED")
    await data(
        env,
        ADD_RATES,
        input={
            "rateCardId": found.rate_card_id,
            "rates": [rate(seats, "20", rateType="SUBSCRIPTION")],
        },
    )
    return World(found.customer_id, found.rate_card_id, found.product_id, seats, fee)


def every_term(w: World) -> dict[str, Any]:
    return {
        "overrides": [
            {"productId": w.tokens, "startingAt": APRIL, "type": "MULTIPLIER", "multiplier": "0.5"}
        ],
        "credits": [{"name": "Welcome", "amount": "5", "startingAt": APRIL, "endingBefore": MAY}],
        "recurringCredits": [
            {"name": "Monthly", "amount": "9", "frequency": "MONTHLY", "startingAt": APRIL}
        ],
        "commits": [
            {
                "name": "Prepaid",
                "productId": w.fee,
                "type": "PREPAID",
                "amount": "100",
                "startingAt": APRIL,
                "endingBefore": YEAR_LATER,
            }
        ],
        "subscriptions": [
            {"productId": w.seats, "quantitySchedule": [{"startingAt": APRIL, "quantity": "2"}]}
        ],
        "scheduledCharges": [
            {
                "productId": w.fee,
                "timestamp": "2026-04-15T00:00:00Z",
                "amount": "50",
                "name": "Onboarding",
            }
        ],
    }


TERM_KINDS = (
    "overrides",
    "credits",
    "recurringCredits",
    "commits",
    "subscriptions",
    "scheduledCharges",
)


async def test_a_contract_with_every_term_gets_ids_and_bills_them(env: Env) -> None:
    w = await world(env)
    created = await contract(env, w.customer_id, w.rate_card_id, **every_term(w))
    ids = [term["id"] for kind in TERM_KINDS for term in created[kind]]
    assert len(ids) == 6 and all(ids) and len(set(ids)) == 6
    assert created["id"].startswith("ctr_")
    assert (created["billingFrequency"], created["billingAnchor"]) == ("MONTHLY", "FIRST_OF_MONTH")
    assert (created["netPaymentTermsDays"], created["endingBefore"]) == (30, None)
    assert created["overrides"][0]["multiplier"] == "0.5"
    assert created["commits"][0]["invoiceAt"] is None
    assert created["subscriptions"][0]["proration"] is True
    assert (await data(env, GET, env.read_key, id=created["id"]))["contract"] == created

    await send(env, llm("t1", "acme", 100))
    invoice = await draft(env, w.customer_id)
    # usage 100 x $0.01 x 0.5; seats 2 x $20; the $5 and $9 credits draw first, then the
    # prepaid commit covers the rest of the usage and subscription spend (40.50 - 14)
    assert sorted(amounts(invoice)) == sorted(
        [
            ("USAGE", "0.50"),
            ("SUBSCRIPTION", "40.00"),
            ("SCHEDULED", "50.00"),
            ("COMMIT_PURCHASE", "100.00"),
            ("CREDIT_APPLIED", "-5.00"),
            ("CREDIT_APPLIED", "-9.00"),
            ("COMMIT_APPLIED", "-26.50"),
        ]
    )
    assert [t for t, _ in amounts(invoice)] == [
        "USAGE",
        "SUBSCRIPTION",
        "SCHEDULED",
        "COMMIT_PURCHASE",
        "CREDIT_APPLIED",
        "CREDIT_APPLIED",
        "COMMIT_APPLIED",
    ]
    assert (invoice["subtotal"], invoice["total"]) == ("190.50", "150.00")


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("overrides", "overrides[0].product_id"),
        ("credits", "credits[0].applicable_product_ids"),
        ("recurringCredits", "recurring_credits[0].applicable_product_ids"),
        ("commits", "commits[0].product_id"),
        ("subscriptions", "subscriptions[0].product_id"),
        ("scheduledCharges", "scheduled_charges[0].product_id"),
    ],
)
async def test_a_term_naming_an_unknown_product_names_the_field(
    env: Env, kind: str, field: str
) -> None:
    w = await world(env)
    term = every_term(w)[kind][0]
    if "productId" in term:
        term["productId"] = "prod_nope"
    else:
        term["applicableProductIds"] = [w.tokens, "prod_nope"]
    extensions = await failure(
        env,
        CREATE_CONTRACT,
        input={
            "customerId": w.customer_id,
            "rateCardId": w.rate_card_id,
            "startingAt": APRIL,
            kind: [term],
        },
    )
    assert extensions == {"code": "VALIDATION", "field": field}
    assert (await data(env, LIST, customer=w.customer_id, all=False))["contracts"]["nodes"] == []


@pytest.mark.parametrize(
    ("kind", "product_attr", "field"),
    [
        ("commits", "tokens", "commits[0].product_id"),
        ("scheduledCharges", "seats", "scheduled_charges[0].product_id"),
        ("subscriptions", "fee", "subscriptions[0].product_id"),
    ],
)
async def test_a_term_naming_a_product_of_the_wrong_type_names_the_field(
    env: Env, kind: str, product_attr: str, field: str
) -> None:
    """SPEC §5: commits and scheduled charges name a fixed product; subscriptions are
    priced by a subscription rate, so they name a subscription product."""
    w = await world(env)
    term = {**every_term(w)[kind][0], "productId": getattr(w, product_attr)}
    extensions = await failure(
        env,
        CREATE_CONTRACT,
        input={
            "customerId": w.customer_id,
            "rateCardId": w.rate_card_id,
            "startingAt": APRIL,
            kind: [term],
        },
    )
    assert extensions == {"code": "VALIDATION", "field": field}


async def test_invalid_contracts_are_refused(env: Env) -> None:
    w = await world(env)
    base = {"customerId": w.customer_id, "rateCardId": w.rate_card_id, "startingAt": APRIL}
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"endingBefore": APRIL}, {"code": "VALIDATION", "field": "ending_before"}),
        (
            {"credits": [{"name": "C", "amount": "0", "startingAt": APRIL, "endingBefore": MAY}]},
            {"code": "VALIDATION", "field": "credits[0].amount"},
        ),
        (
            {"credits": [{"name": "C", "amount": "1", "startingAt": MAY, "endingBefore": APRIL}]},
            {"code": "VALIDATION", "field": "credits[0].ending_before"},
        ),
        (
            {"overrides": [{"productId": w.tokens, "startingAt": APRIL, "type": "MULTIPLIER"}]},
            {"code": "VALIDATION", "field": "overrides[0].multiplier"},
        ),
        (
            {"subscriptions": [{"productId": w.seats, "quantitySchedule": []}]},
            {"code": "VALIDATION", "field": "subscriptions[0].quantity_schedule"},
        ),
    ]
    for fields, expected in cases:
        assert await failure(env, CREATE_CONTRACT, input={**base, **fields}) == expected, fields
    assert await code_of(env, CREATE_CONTRACT, input={**base, "customerId": "cus_no"}) == (
        "NOT_FOUND"
    )
    assert await code_of(env, CREATE_CONTRACT, input={**base, "rateCardId": "rc_no"}) == (
        "NOT_FOUND"
    )
    assert (await data(env, LIST, customer=None, all=False))["contracts"]["nodes"] == []
    assert await code_of(env, GET, id="ctr_nope") == "NOT_FOUND"


async def test_every_edit_is_recorded_in_the_contracts_history(env: Env) -> None:
    w = await world(env)
    created = await contract(env, w.customer_id, w.rate_card_id)
    credit = {"name": "Top-up", "amount": "2", "startingAt": APRIL, "endingBefore": MAY}
    await edit(env, created["id"], addCredits=[credit])
    await edit(env, created["id"], updateEndDate={"endingBefore": YEAR_LATER})
    await data(env, ARCHIVE, id=created["id"])
    history = (await data(env, EDITS, id=created["id"]))["contract"]["edits"]
    assert [(e["version"], e["kind"]) for e in history] == [
        (1, "create"),
        (2, "edit"),
        (3, "edit"),
        (4, "archive"),
    ]
    actor = await admin_key_id(env)
    assert {e["actor"] for e in history} == {actor}
    assert {e["createdAt"] for e in history} == {"2026-04-10T12:00:00Z"}
    assert history[0]["changes"]["customer_id"] == w.customer_id
    assert [c["name"] for c in history[1]["changes"]["add_credits"]] == ["Top-up"]
    assert history[2]["changes"]["ending_before"].startswith("2027-04-01T00:00:00")


async def test_adding_a_credit_changes_the_draft_and_balances_at_once(env: Env) -> None:
    world_ = await shop(env, price="0.01")
    await send(env, llm("t1", "acme", 500))
    assert amounts(await draft(env, world_.customer_id)) == [("USAGE", "5.00")]
    assert await balances(env, world_.customer_id) == []

    credit = {"name": "Top-up", "amount": "2", "startingAt": APRIL, "endingBefore": MAY}
    edited = await edit(env, world_.contract_id, addCredits=[credit])
    (added,) = edited["credits"]
    assert added["id"] and added["name"] == "Top-up"

    invoice = await draft(env, world_.customer_id)
    assert amounts(invoice) == [("USAGE", "5.00"), ("CREDIT_APPLIED", "-2.00")]
    assert invoice["lines"][1]["balanceId"] == added["id"]
    assert (invoice["subtotal"], invoice["total"]) == ("5.00", "3.00")
    (balance,) = await balances(env, world_.customer_id)
    assert (balance["id"], balance["sourceId"], balance["kind"]) == (
        added["id"],
        added["id"],
        "CREDIT",
    )
    assert balance["contractId"] == world_.contract_id
    assert [(e["type"], e["amount"], e["timestamp"]) for e in balance["ledger"]] == [
        ("SEGMENT_START", "2", APRIL)
    ]
    assert (balance["ledgerBalance"], balance["pendingDraftDeduction"]) == ("2", "2.00")
    assert balance["remainingAfterDrafts"] == "0.00"


async def test_archiving_a_term_removes_it_from_the_draft(env: Env) -> None:
    world_ = await shop(env, price="0.01")
    credit = {"name": "Top-up", "amount": "2", "startingAt": APRIL, "endingBefore": MAY}
    credit_id = (await edit(env, world_.contract_id, addCredits=[credit]))["credits"][0]["id"]
    await send(env, llm("t1", "acme", 500))
    assert amounts(await draft(env, world_.customer_id))[-1] == ("CREDIT_APPLIED", "-2.00")

    for ids, field in (
        (["cred_nope"], "archive_term_ids[0]"),
        ([credit_id, "cred_nope"], "archive_term_ids[1]"),
    ):
        extensions = await failure(
            env, EDIT_CONTRACT, input={"contractId": world_.contract_id, "archiveTermIds": ids}
        )
        assert extensions == {"code": "VALIDATION", "field": field}
    assert len((await data(env, GET, id=world_.contract_id))["contract"]["credits"]) == 1

    edited = await edit(env, world_.contract_id, archiveTermIds=[credit_id])
    assert edited["credits"] == []
    assert amounts(await draft(env, world_.customer_id)) == [("USAGE", "5.00")]
    assert await balances(env, world_.customer_id) == []
    # an archived term is no longer one of the contract's terms
    extensions = await failure(
        env, EDIT_CONTRACT, input={"contractId": world_.contract_id, "archiveTermIds": [credit_id]}
    )
    assert extensions == {"code": "VALIDATION", "field": "archive_term_ids[0]"}


async def test_moving_the_end_date_cuts_the_period_and_null_makes_it_open_ended(
    env: Env,
) -> None:
    world_ = await shop(env, price="0.01")
    await send(env, llm("t1", "acme", 100))
    cut = "2026-04-20T00:00:00Z"
    assert (await edit(env, world_.contract_id, updateEndDate={"endingBefore": cut}))[
        "endingBefore"
    ] == cut
    invoice = await draft(env, world_.customer_id)
    assert (invoice["startingAt"], invoice["endingBefore"]) == (APRIL, cut)
    assert invoice["lines"][0]["endingBefore"] == cut

    opened = await edit(env, world_.contract_id, updateEndDate={"endingBefore": None})
    assert opened["endingBefore"] is None
    assert (await draft(env, world_.customer_id))["endingBefore"] == MAY

    extensions = await failure(
        env,
        EDIT_CONTRACT,
        input={"contractId": world_.contract_id, "updateEndDate": {"endingBefore": APRIL}},
    )
    assert extensions == {"code": "VALIDATION", "field": "ending_before"}
    assert (await data(env, GET, id=world_.contract_id))["contract"]["endingBefore"] is None


async def test_an_edit_that_changes_nothing_is_refused(env: Env) -> None:
    world_ = await shop(env)
    extensions = await failure(env, EDIT_CONTRACT, input={"contractId": world_.contract_id})
    assert extensions["code"] == "VALIDATION"
    assert extensions["field"] == "contract_id"
    history = (await data(env, EDITS, id=world_.contract_id))["contract"]["edits"]
    assert [e["version"] for e in history] == [1]
    edit_ = {"contractId": "ctr_nope", "archiveTermIds": ["x"]}
    assert await code_of(env, EDIT_CONTRACT, input=edit_) == "NOT_FOUND"


async def test_an_edit_adding_a_term_for_an_unknown_product_changes_nothing(env: Env) -> None:
    world_ = await shop(env)
    charge = {"productId": "prod_nope", "timestamp": APRIL, "amount": "1", "name": "X"}
    extensions = await failure(
        env,
        EDIT_CONTRACT,
        input={"contractId": world_.contract_id, "addScheduledCharges": [charge]},
    )
    assert extensions == {"code": "VALIDATION", "field": "scheduled_charges[0].product_id"}
    assert (await data(env, GET, id=world_.contract_id))["contract"]["scheduledCharges"] == []


async def test_an_archived_contract_has_no_drafts_and_is_hidden(env: Env) -> None:
    world_ = await shop(env, price="0.01")
    credit = {"name": "Top-up", "amount": "2", "startingAt": APRIL, "endingBefore": MAY}
    await edit(env, world_.contract_id, addCredits=[credit])
    await send(env, llm("t1", "acme", 100))
    assert len(await drafts(env, world_.customer_id)) == 1

    archived = (await data(env, ARCHIVE, id=world_.contract_id))["archiveContract"]
    assert archived == {"id": world_.contract_id, "archivedAt": "2026-04-10T12:00:00Z"}
    assert await drafts(env, world_.customer_id) == []
    assert await balances(env, world_.customer_id) == []
    assert (await data(env, LIST, customer=None, all=False))["contracts"]["nodes"] == []
    assert (await data(env, LIST, customer=world_.customer_id, all=True))["contracts"]["nodes"] == [
        archived
    ]
    assert (await data(env, CUSTOMER_CONTRACTS, id=world_.customer_id))["customer"][
        "contracts"
    ] == []
    found = (await data(env, GET, id=world_.contract_id))["contract"]
    assert found["archivedAt"] == "2026-04-10T12:00:00Z"
    assert await code_of(env, ARCHIVE, id=world_.contract_id) == "NOT_FOUND"
    code = await code_of(env, EDIT_CONTRACT, input={"contractId": world_.contract_id,
                                                   "addCredits": [credit]})  # fmt: skip
    assert code == "NOT_FOUND"


async def test_contracts_filter_by_customer(env: Env) -> None:
    w = await world(env)
    other = await customer(env, "Globex")
    mine = await contract(env, w.customer_id, w.rate_card_id)
    theirs = await contract(env, other, w.rate_card_id)
    found = (await data(env, LIST, customer=other, all=False))["contracts"]["nodes"]
    assert [c["id"] for c in found] == [theirs["id"]]
    found = (await data(env, CUSTOMER_CONTRACTS, id=w.customer_id))["customer"]["contracts"]
    assert [c["id"] for c in found] == [mine["id"]]


# --- packages -----------------------------------------------------------------------------


def starter(w: World, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Starter",
        "rateCardId": w.rate_card_id,
        "duration": "P1Y",
        "credits": [
            {"name": "Welcome", "amount": "5", "startingOffset": "P0D", "endingOffset": "P1M"}
        ],
        "recurringCredits": [{"name": "Monthly", "amount": "9", "frequency": "MONTHLY"}],
        "commits": [
            {
                "name": "Prepaid",
                "productId": w.fee,
                "type": "PREPAID",
                "amount": "100",
                "endingOffset": "P1Y",
                "invoiceOffset": "P14D",
            }
        ],
        "subscriptions": [{"productId": w.seats, "quantity": "3", "startingOffset": "PT12H"}],
        **changes,
    }


async def test_a_package_stores_its_offsets(env: Env) -> None:
    w = await world(env)
    created = (await data(env, CREATE_PACKAGE, input=starter(w)))["createPackage"]
    assert created["id"].startswith("pkg_") and created["duration"] == "P1Y"
    assert created["credits"] == [
        {
            "name": "Welcome",
            "amount": "5",
            "startingOffset": "P0D",
            "endingOffset": "P1M",
            "priority": None,
            "applicableProductIds": None,
        }
    ]
    assert created["recurringCredits"][0]["startingOffset"] == "P0D"
    assert created["recurringCredits"][0]["endingOffset"] is None
    assert created["commits"][0]["invoiceOffset"] == "P14D"
    assert created["subscriptions"] == [
        {"productId": w.seats, "quantity": "3", "startingOffset": "PT12H", "proration": True}
    ]
    listed = (await data(env, PACKAGES))["packages"]
    assert listed == {
        "nodes": [{"id": created["id"], "name": "Starter"}],
        "pageInfo": {"hasNextPage": False},
    }


async def test_a_contract_from_a_package_dates_its_terms_from_its_start(env: Env) -> None:
    w = await world(env)
    package_id = (await data(env, CREATE_PACKAGE, input=starter(w)))["createPackage"]["id"]
    start = "2026-03-31T00:00:00Z"
    made = await data(
        env,
        FROM_PACKAGE,
        input={"packageId": package_id, "customerId": w.customer_id, "startingAt": start},
    )
    found = made["createContractFromPackage"]
    assert (found["customerId"], found["rateCardId"]) == (w.customer_id, w.rate_card_id)
    assert (found["startingAt"], found["endingBefore"]) == (start, "2027-03-31T00:00:00Z")
    (credit,) = found["credits"]
    # one month after March 31 is April 30 (the day is clamped to the month's end)
    assert (credit["startingAt"], credit["endingBefore"]) == (start, "2026-04-30T00:00:00Z")
    (recurring,) = found["recurringCredits"]
    assert (recurring["startingAt"], recurring["endingBefore"]) == (start, None)
    (commit,) = found["commits"]
    assert (commit["endingBefore"], commit["invoiceAt"]) == (
        "2027-03-31T00:00:00Z",
        "2026-04-14T00:00:00Z",
    )
    (subscription,) = found["subscriptions"]
    assert subscription["quantitySchedule"] == [
        {"startingAt": "2026-03-31T12:00:00Z", "quantity": "3"}
    ]
    ids = [term["id"] for kind in TERM_KINDS for term in found[kind]]
    assert len(ids) == 4 and all(ids) and len(set(ids)) == 4
    assert (await data(env, GET, id=found["id"]))["contract"] == found
    history = (await data(env, EDITS, id=found["id"]))["contract"]["edits"]
    assert [(e["version"], e["kind"]) for e in history] == [(1, "create")]

    # the April draft: 3 seats ($60), the commit bought on April 14, the $5 credit (until
    # April 30) and the April $9 segment draw first, the commit covers the rest
    invoice = next(d for d in await drafts(env, w.customer_id) if d["startingAt"] == APRIL)
    assert sorted(amounts(invoice)) == sorted(
        [
            ("SUBSCRIPTION", "60.00"),
            ("COMMIT_PURCHASE", "100.00"),
            ("CREDIT_APPLIED", "-5.00"),
            ("CREDIT_APPLIED", "-9.00"),
            ("COMMIT_APPLIED", "-46.00"),
        ]
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration": "one year"}, "duration"),
        ({"duration": "P"}, "duration"),
        (
            {"credits": [{"name": "C", "amount": "5", "endingOffset": "1 month"}]},
            "credits[0].ending_offset",
        ),
        (
            {"credits": [{"name": "C", "amount": "5", "startingOffset": "P1X",
                          "endingOffset": "P1M"}]},
            "credits[0].starting_offset",
        ),
        (
            {"recurringCredits": [{"name": "R", "amount": "9", "frequency": "MONTHLY",
                                   "endingOffset": "soon"}]},
            "recurring_credits[0].ending_offset",
        ),
        (
            {"subscriptions": [{"productId": W_SEATS, "quantity": "1", "startingOffset": "T1H"}]},
            "subscriptions[0].starting_offset",
        ),
        (
            {"credits": [{"name": "C", "amount": "5", "startingOffset": "P1M",
                          "endingOffset": "P0D"}]},
            "credits[0].ending_before",
        ),
        ({"credits": [{"name": "C", "amount": "0", "endingOffset": "P1M"}]}, "credits[0].amount"),
        ({"name": " "}, "name"),
    ],
)  # fmt: skip
async def test_an_invalid_package_names_the_field(
    env: Env, changes: dict[str, Any], field: str
) -> None:
    w = await world(env)
    for term in changes.get("subscriptions", []):
        term["productId"] = w.seats
    package = {**starter(w), "commits": [], **changes}
    extensions = await failure(env, CREATE_PACKAGE, input=package)
    assert extensions == {"code": "VALIDATION", "field": field}
    assert (await data(env, PACKAGES))["packages"]["nodes"] == []


async def test_a_package_naming_an_unknown_product_is_refused_at_creation(env: Env) -> None:
    """A package that names a product the organization does not have could never be
    turned into a contract: it is refused when it is created, naming the field."""
    w = await world(env)
    package = starter(w, subscriptions=[{"productId": "prod_nope", "quantity": "1"}])
    extensions = await failure(env, CREATE_PACKAGE, input=package)
    assert extensions == {"code": "VALIDATION", "field": "subscriptions[0].product_id"}


async def test_package_references_must_exist(env: Env) -> None:
    w = await world(env)
    assert await code_of(env, CREATE_PACKAGE, input=starter(w, rateCardId="rc_no")) == ("NOT_FOUND")
    package_id = (await data(env, CREATE_PACKAGE, input=starter(w)))["createPackage"]["id"]
    for package, customer_id in ((package_id, "cus_nope"), ("pkg_nope", w.customer_id)):
        code = await code_of(
            env,
            FROM_PACKAGE,
            input={"packageId": package, "customerId": customer_id, "startingAt": APRIL},
        )
        assert code == "NOT_FOUND"
    nodes = (await data(env, LIST, customer=w.customer_id, all=False))["contracts"]["nodes"]
    assert nodes == []
    _, other_key = await env.new_org("Other")
    other = await data(
        env,
        'mutation { createCustomer(input: {name: "B"}) { id } }',
        other_key,
    )
    code = await code_of(
        env,
        FROM_PACKAGE,
        other_key,
        input={
            "packageId": package_id,
            "customerId": other["createCustomer"]["id"],
            "startingAt": APRIL,
        },
    )
    assert code == "NOT_FOUND"
