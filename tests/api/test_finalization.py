"""Finalization, late events, void and regenerate (SPEC §6), driven by the jobs the
workers run. Figures are worked out by hand: Tokens at $0.01 each."""

from __future__ import annotations

from typing import Any

from tests.api.support import (
    amounts,
    balances,
    code_of,
    data,
    drafts,
    llm,
    send,
    shop,
)
from tests.api.worker_support import at, messages
from tests.conftest import Env

INVOICES = """
query($id: ID!) { customer(id: $id) { invoices(first: 10) { nodes {
  id status total lateEvents startingAt replacesInvoiceId voidedAt
  lines { type amount quantity }
} } } }"""
VOID = "mutation($id: ID!) { voidInvoice(id: $id) { id status voidedAt } }"
REGENERATE = """
mutation($id: ID!) { regenerateInvoice(id: $id) { id status total replacesInvoiceId } }"""
CREDIT = {
    "name": "Trial",
    "amount": "5.00",
    "startingAt": "2026-04-01T00:00:00Z",
    "endingBefore": "2026-06-01T00:00:00Z",
}


async def invoices(env: Env, customer_id: str) -> list[Any]:
    found = await data(env, INVOICES, id=customer_id)
    return list(found["customer"]["invoices"]["nodes"])


async def test_a_period_finalizes_at_end_plus_grace_once(env: Env) -> None:
    acme = await shop(env)
    await send(env, llm("a", "acme", 300, at="2026-04-05T00:00:00Z"))
    env.clock.set(at("2026-05-01T23:59:59Z"))
    await env.run_jobs()
    assert await invoices(env, acme.customer_id) == []
    env.clock.set(at("2026-05-02T00:00:00Z"))
    await env.run_jobs()
    await env.run_jobs()
    (invoice,) = await invoices(env, acme.customer_id)
    assert (invoice["status"], invoice["total"], invoice["lateEvents"]) == ("FINALIZED", "3.00", 0)
    assert [d["startingAt"] for d in await drafts(env, acme.customer_id)] == [
        "2026-05-01T00:00:00Z"
    ]
    (message,) = await messages(env, "invoice.finalized")
    assert message["data"]["invoice_id"] == invoice["id"]
    assert message["data"]["total"] == "3.00"


async def test_lateness_is_decided_by_arrival_even_when_the_finalizer_is_behind(
    env: Env,
) -> None:
    acme = await shop(env)
    env.clock.set(at("2026-04-30T23:30:00Z"))
    await send(env, llm("on-time", "acme", 100, at="2026-04-30T23:00:00Z"))
    env.clock.set(at("2026-05-01T12:00:00Z"))  # in the grace window: still counts
    await send(env, llm("in-grace", "acme", 200, at="2026-04-30T23:30:00Z"))
    env.clock.set(at("2026-05-02T06:00:00Z"))  # past the deadline; nothing ran yet
    await send(env, llm("late-1", "acme", 1000, at="2026-04-29T00:00:00Z"))
    await env.run_jobs()
    (invoice,) = await invoices(env, acme.customer_id)
    assert (invoice["total"], invoice["lateEvents"]) == ("3.00", 1)
    await send(env, llm("late-2", "acme", 1000, at="2026-04-15T00:00:00Z"))
    (invoice,) = await invoices(env, acme.customer_id)
    assert (invoice["total"], invoice["lateEvents"]) == ("3.00", 2)


async def test_void_restores_the_credit_and_regenerate_rerates_with_late_events(
    env: Env,
) -> None:
    acme = await shop(env, credits=[CREDIT])
    await send(env, llm("a", "acme", 300, at="2026-04-05T00:00:00Z"))
    env.clock.set(at("2026-05-02T00:00:00Z"))
    await env.run_jobs()
    (invoice,) = await invoices(env, acme.customer_id)
    assert amounts(invoice) == [("USAGE", "3.00"), ("CREDIT_APPLIED", "-3.00")]
    (credit,) = await balances(env, acme.customer_id)
    assert credit["ledgerBalance"] == "2.00"
    await send(env, llm("late", "acme", 100, at="2026-04-06T00:00:00Z"))

    voided = (await data(env, VOID, id=invoice["id"]))["voidInvoice"]
    assert voided["status"] == "VOID"
    (credit,) = await balances(env, acme.customer_id)
    assert credit["ledgerBalance"] == "5.00"
    assert [t["type"] for t in credit["ledger"]][-1] == "VOID_RESTORE"
    assert await code_of(env, VOID, id=invoice["id"]) == "CONFLICT"
    await env.run_jobs()  # the finalizer leaves a voided period to regenerateInvoice
    assert [i["status"] for i in await invoices(env, acme.customer_id)] == ["VOID"]

    regenerated = (await data(env, REGENERATE, id=invoice["id"]))["regenerateInvoice"]
    assert (regenerated["total"], regenerated["replacesInvoiceId"]) == ("0.00", invoice["id"])
    (credit,) = await balances(env, acme.customer_id)
    assert credit["ledgerBalance"] == "1.00"  # 5.00 − (300 + 100 late tokens) × $0.01
    assert await code_of(env, REGENERATE, id=invoice["id"]) == "CONFLICT"
    assert await code_of(env, REGENERATE, id=regenerated["id"]) == "CONFLICT"
    assert [m["data"]["invoice_id"] for m in await messages(env, "invoice.voided")] == [
        invoice["id"]
    ]


async def test_void_and_regenerate_are_admin_only_and_scoped(env: Env) -> None:
    acme = await shop(env)
    await send(env, llm("a", "acme", 300, at="2026-04-05T00:00:00Z"))
    env.clock.set(at("2026-05-02T00:00:00Z"))
    await env.run_jobs()
    (invoice,) = await invoices(env, acme.customer_id)
    assert await code_of(env, VOID, key=env.read_key, id=invoice["id"]) == "FORBIDDEN"
    _, other = await env.new_org("Other")
    assert await code_of(env, VOID, key=other, id=invoice["id"]) == "NOT_FOUND"
    assert await code_of(env, REGENERATE, key=other, id=invoice["id"]) == "NOT_FOUND"
