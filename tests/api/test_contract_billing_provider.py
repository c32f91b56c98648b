"""A contract's billing provider through GraphQL (SPEC §5, §11): NONE unless the contract
is created (directly or from a package) or edited to STRIPE; an edit that only moves the
provider is a real edit, recorded in the contract's history; and it decides where the
invoices finalized from then on go.

No Stripe is reached: the organization has no Stripe settings, so an invoice owed to
Stripe ends in BILLING_PROVIDER_ERROR at once, which shows that a push was owed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.api.support import (
    APRIL,
    CONTRACT,
    MAY,
    code_of,
    contract,
    customer,
    data,
    failure,
    gql,
    llm,
    send,
    shop,
)
from tests.conftest import Env

SELECTION = f"{CONTRACT} billingProvider"
CREATE = f"""
mutation($input: CreateContractInput!) {{ createContract(input: $input) {{ {SELECTION} }} }}"""
EDIT = f"""
mutation($input: EditContractInput!) {{ editContract(input: $input) {{ {SELECTION} }} }}"""
GET = f"query($id: ID!) {{ contract(id: $id) {{ {SELECTION} }} }}"
EDITS = "query($id: ID!) { contract(id: $id) { edits { version kind changes } } }"
LISTED = """
query($c: ID!) {
  contracts(customerId: $c) { nodes { id billingProvider } }
  customer(id: $c) { contracts { id billingProvider } }
}"""
CREATE_PACKAGE = """
mutation($input: CreatePackageInput!) { createPackage(input: $input) { id } }"""
FROM_PACKAGE = f"""
mutation($input: CreateContractFromPackageInput!) {{
  createContractFromPackage(input: $input) {{ {SELECTION} }}
}}"""
INVOICES = """
query($id: ID!) { customer(id: $id) { invoices(first: 10) { nodes {
  id contractId startingAt total billingProvider { provider status paymentStatus error }
} } } }"""
CREDIT = {"name": "Top-up", "amount": "2", "startingAt": APRIL, "endingBefore": MAY}


async def provider_of(env: Env, contract_id: str) -> str:
    return str((await data(env, GET, id=contract_id))["contract"]["billingProvider"])


async def history(env: Env, contract_id: str) -> list[dict[str, Any]]:
    return list((await data(env, EDITS, id=contract_id))["contract"]["edits"])


async def new_contract(env: Env, **fields: Any) -> dict[str, Any]:
    """A second contract (``fields`` added to its terms) for the customer of a new shop,
    from April 1 on the shop's rate card (tokens at $0.01)."""
    acme = await shop(env)
    terms = {"customerId": acme.customer_id, "rateCardId": acme.rate_card_id, "startingAt": APRIL}
    created: dict[str, Any] = (await data(env, CREATE, input={**terms, **fields}))["createContract"]
    return created


# --- creating -------------------------------------------------------------------------------


async def test_a_contract_is_billed_through_no_provider_by_default(env: Env) -> None:
    created = await new_contract(env)
    assert created["billingProvider"] == "NONE"
    # the shop's own contract, made without naming a provider through the support helper
    listed = await data(env, LISTED, c=created["customerId"])
    assert [c["billingProvider"] for c in listed["contracts"]["nodes"]] == ["NONE", "NONE"]
    (create,) = await history(env, created["id"])
    assert create["kind"] == "create"
    assert create["changes"]["billing_provider"] == "none"


async def test_a_contract_created_with_stripe_shows_it_everywhere(env: Env) -> None:
    created = await new_contract(env, billingProvider="STRIPE")
    assert created["billingProvider"] == "STRIPE"
    fetched = (await data(env, GET, id=created["id"]))["contract"]
    assert fetched == created
    listed = await data(env, LISTED, c=created["customerId"])
    assert {"id": created["id"], "billingProvider": "STRIPE"} in listed["contracts"]["nodes"]
    assert {"id": created["id"], "billingProvider": "STRIPE"} in listed["customer"]["contracts"]
    (create,) = await history(env, created["id"])
    assert (create["version"], create["kind"]) == (1, "create")
    assert create["changes"]["billing_provider"] == "stripe"


async def test_an_unknown_billing_provider_is_refused(env: Env) -> None:
    acme = await shop(env)
    terms = {
        "customerId": acme.customer_id,
        "rateCardId": acme.rate_card_id,
        "startingAt": APRIL,
        "billingProvider": "PAYPAL",
    }
    body = await gql(env, CREATE, input=terms)
    assert body.get("errors") and body.get("data") is None, body
    listed = await data(env, LISTED, c=acme.customer_id)
    assert [c["id"] for c in listed["contracts"]["nodes"]] == [acme.contract_id]


# --- editing --------------------------------------------------------------------------------


async def test_an_edit_moves_the_contract_to_stripe_and_is_recorded(env: Env) -> None:
    created = await new_contract(env)
    edited = (
        await data(env, EDIT, input={"contractId": created["id"], "billingProvider": "STRIPE"})
    )["editContract"]
    assert edited["billingProvider"] == "STRIPE"
    # nothing else of the contract changed
    assert {**edited, "billingProvider": "NONE"} == created
    assert await provider_of(env, created["id"]) == "STRIPE"
    versions = await history(env, created["id"])
    assert [(e["version"], e["kind"]) for e in versions] == [(1, "create"), (2, "edit")]
    changes = versions[1]["changes"]
    assert changes["billing_provider"] == "stripe"
    assert changes["add_credits"] == [] and changes["archive_term_ids"] == []


async def test_an_edit_changing_only_the_billing_provider_is_not_empty(env: Env) -> None:
    created = await new_contract(env)
    body = await gql(env, EDIT, input={"contractId": created["id"], "billingProvider": "STRIPE"})
    assert "errors" not in body, body["errors"]
    # whereas an edit naming nothing (billingProvider null is "unchanged") still is empty
    for empty in ({}, {"billingProvider": None}):
        extensions = await failure(env, EDIT, input={"contractId": created["id"], **empty})
        assert (extensions["code"], extensions["field"]) == ("VALIDATION", "contract_id")
    assert [e["version"] for e in await history(env, created["id"])] == [1, 2]
    assert await provider_of(env, created["id"]) == "STRIPE"


async def test_an_edit_moves_a_stripe_contract_back_to_none(env: Env) -> None:
    created = await new_contract(env, billingProvider="STRIPE")
    edited = (
        await data(env, EDIT, input={"contractId": created["id"], "billingProvider": "NONE"})
    )["editContract"]
    assert edited["billingProvider"] == "NONE"
    assert await provider_of(env, created["id"]) == "NONE"
    versions = await history(env, created["id"])
    assert versions[-1]["changes"]["billing_provider"] == "none"


async def test_an_edit_not_naming_the_provider_keeps_it(env: Env) -> None:
    created = await new_contract(env, billingProvider="STRIPE")
    edited = (await data(env, EDIT, input={"contractId": created["id"], "addCredits": [CREDIT]}))[
        "editContract"
    ]
    assert edited["billingProvider"] == "STRIPE"
    assert [c["name"] for c in edited["credits"]] == ["Top-up"]
    assert await provider_of(env, created["id"]) == "STRIPE"
    (_, edit) = await history(env, created["id"])
    assert edit["changes"]["billing_provider"] is None


async def test_an_edit_of_the_provider_and_terms_together_applies_both(env: Env) -> None:
    created = await new_contract(env)
    change = {"contractId": created["id"], "addCredits": [CREDIT], "billingProvider": "STRIPE"}
    edited = (await data(env, EDIT, input=change))["editContract"]
    assert edited["billingProvider"] == "STRIPE"
    assert [c["name"] for c in edited["credits"]] == ["Top-up"]
    (_, edit) = await history(env, created["id"])
    assert edit["changes"]["billing_provider"] == "stripe"
    assert [c["name"] for c in edit["changes"]["add_credits"]] == ["Top-up"]


async def test_a_refused_edit_leaves_the_provider_alone(env: Env) -> None:
    created = await new_contract(env)
    charge = {"productId": "prod_nope", "timestamp": APRIL, "amount": "1", "name": "X"}
    change = {
        "contractId": created["id"],
        "billingProvider": "STRIPE",
        "addScheduledCharges": [charge],
    }
    extensions = await failure(env, EDIT, input=change)
    assert extensions == {"code": "VALIDATION", "field": "scheduled_charges[0].product_id"}
    assert await provider_of(env, created["id"]) == "NONE"
    assert [e["version"] for e in await history(env, created["id"])] == [1]
    assert await code_of(
        env, EDIT, input={"contractId": "ctr_nope", "billingProvider": "STRIPE"}
    ) == ("NOT_FOUND")


async def test_editing_the_provider_needs_an_admin_key(env: Env) -> None:
    created = await new_contract(env)
    change = {"contractId": created["id"], "billingProvider": "STRIPE"}
    assert await code_of(env, EDIT, env.read_key, input=change) == "FORBIDDEN"
    assert await provider_of(env, created["id"]) == "NONE"


# --- packages -------------------------------------------------------------------------------


async def package_world(env: Env) -> tuple[str, str]:
    """A package (a $5 welcome credit for a month) and a customer: (package id, customer id)."""
    acme = await shop(env)
    package = {
        "name": "Starter",
        "rateCardId": acme.rate_card_id,
        "credits": [{"name": "Welcome", "amount": "5", "endingOffset": "P1M"}],
    }
    package_id = (await data(env, CREATE_PACKAGE, input=package))["createPackage"]["id"]
    other = await customer(env, "Globex", ["globex"])
    return str(package_id), other


@pytest.mark.parametrize("provider", ["STRIPE", "NONE", None])
async def test_a_contract_from_a_package_takes_the_billing_provider_given(
    env: Env, provider: str | None
) -> None:
    package_id, customer_id = await package_world(env)
    terms: dict[str, Any] = {"packageId": package_id, "customerId": customer_id}
    if provider is not None:
        terms["billingProvider"] = provider
    made = (await data(env, FROM_PACKAGE, input={**terms, "startingAt": APRIL}))[
        "createContractFromPackage"
    ]
    assert made["billingProvider"] == (provider or "NONE")
    assert [c["name"] for c in made["credits"]] == ["Welcome"]
    assert (await data(env, GET, id=made["id"]))["contract"] == made
    (create,) = await history(env, made["id"])
    assert create["changes"]["billing_provider"] == (provider or "NONE").lower()


# --- what the provider decides ----------------------------------------------------------------


async def finalize_april(env: Env) -> None:
    """Run the jobs past May 2 (April's end + grace): April's invoices are finalized."""
    env.clock.set(datetime(2026, 5, 2, tzinfo=UTC))
    await env.run_jobs()


async def test_only_invoices_of_stripe_contracts_are_owed_to_stripe(env: Env) -> None:
    acme = await shop(env)  # billed through no provider
    stripe_billed = await customer(env, "Globex", ["globex"])
    await contract(env, stripe_billed, acme.rate_card_id, billingProvider="STRIPE")
    await send(env, llm("t1", "acme", 100), llm("t2", "globex", 200))
    await finalize_april(env)
    (none_invoice,) = (await data(env, INVOICES, id=acme.customer_id))["customer"]["invoices"][
        "nodes"
    ]
    assert (none_invoice["total"], none_invoice["billingProvider"]) == ("1.00", None)
    (stripe_invoice,) = (await data(env, INVOICES, id=stripe_billed))["customer"]["invoices"][
        "nodes"
    ]
    assert stripe_invoice["total"] == "2.00"
    at_stripe = stripe_invoice["billingProvider"]
    assert (at_stripe["provider"], at_stripe["status"], at_stripe["paymentStatus"]) == (
        "STRIPE",
        "BILLING_PROVIDER_ERROR",
        "NONE",
    )
    assert "setStripeSettings" in at_stripe["error"]


async def test_an_edit_to_stripe_applies_to_invoices_finalized_from_then_on(env: Env) -> None:
    """March is finalized while the contract bills through no provider (no push, not even
    a skipped one); the contract then moves to Stripe, and April's invoice (finalized after)
    is owed to Stripe."""
    acme = await shop(env, rate_from="2026-03-01T00:00:00Z", starting_at="2026-03-01T00:00:00Z")
    await env.run_jobs()  # April 10: March's grace ended April 2
    (march,) = (await data(env, INVOICES, id=acme.customer_id))["customer"]["invoices"]["nodes"]
    assert (march["startingAt"], march["total"], march["billingProvider"]) == (
        "2026-03-01T00:00:00Z",
        "0.00",
        None,
    )
    await data(env, EDIT, input={"contractId": acme.contract_id, "billingProvider": "STRIPE"})
    await send(env, llm("t2", "acme", 300))
    await finalize_april(env)
    nodes = (await data(env, INVOICES, id=acme.customer_id))["customer"]["invoices"]["nodes"]
    by_start = {n["startingAt"]: n for n in nodes}
    assert set(by_start) == {"2026-03-01T00:00:00Z", APRIL}
    assert by_start["2026-03-01T00:00:00Z"]["billingProvider"] is None  # never re-sent
    april = by_start[APRIL]
    assert april["total"] == "3.00"
    assert april["billingProvider"]["status"] == "BILLING_PROVIDER_ERROR"


async def test_an_edit_back_to_none_stops_pushing_later_invoices(env: Env) -> None:
    acme = await shop(env, billingProvider="STRIPE")
    await data(env, EDIT, input={"contractId": acme.contract_id, "billingProvider": "NONE"})
    await send(env, llm("t1", "acme", 100))
    await finalize_april(env)
    (april,) = (await data(env, INVOICES, id=acme.customer_id))["customer"]["invoices"]["nodes"]
    assert (april["total"], april["billingProvider"]) == ("1.00", None)
