"""Every shared scenario's numbers, produced by the pure core alone (no API, no database).

``ingest`` expectations belong to the API-level runner and are not checked here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.invoices import Invoice, InvoiceLine
from tests.unit.billing.scenario_world import World, groups, ts

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = Path(os.environ.get("METERLINE_SCENARIOS", REPO.parent / "shared" / "scenarios"))
FILES = sorted(SCENARIOS.glob("*.json"))


def _line_matches(expected: Mapping[str, Any], line: InvoiceLine) -> bool:
    checks = [
        "type" not in expected or expected["type"] == line.type.value,
        "product" not in expected or expected["product"] == line.product_id,
        "group" not in expected or groups(expected["group"]) == line.group,
        "name" not in expected or expected["name"] == line.name,
    ]
    for key in ("quantity", "amount", "unit_price"):
        if key in expected:
            actual = getattr(line, key)
            checks.append(actual is not None and Decimal(expected[key]) == actual)
    if "tiers" in expected:
        checks.append(
            [
                tuple(Decimal(t[k]) for k in ("starting_at", "quantity", "price", "amount"))
                for t in expected["tiers"]
            ]
            == [(t.starting_at, t.quantity, t.price, t.amount) for t in line.tiers]
        )
    return all(checks)


def check_invoice(expected: Mapping[str, Any], invoice: Invoice) -> None:
    remaining = list(invoice.lines)
    for wanted in expected.get("lines", []):
        match = next((line for line in remaining if _line_matches(wanted, line)), None)
        assert match is not None, f"no line matches {wanted}; lines: {remaining}"
        remaining.remove(match)
    if "lines" in expected:
        extra = [line for line in remaining if line.quantity != 0 or line.amount != 0]
        assert not extra, f"unexpected lines {extra}"
    for key in ("subtotal", "total"):
        if key in expected:
            assert getattr(invoice, key) == Decimal(expected[key]), key
    if "unrated_usage" in expected:
        actual = sorted((u.product_id, u.group, u.quantity) for u in invoice.unrated_usage)
        wanted_unrated = sorted(
            (u["product"], groups(u.get("group")), Decimal(u["quantity"]))
            for u in expected["unrated_usage"]
        )
        assert actual == wanted_unrated


def _draft(world: World, contract_ref: str, start: str, now: Any) -> Invoice:
    contract = world.contracts[contract_ref]
    drafts = [d for d in world.drafts(contract, now) if d.starting_at == ts(start)]
    assert drafts, f"no open draft of {contract_ref} starting {start}"
    return drafts[0]


def _notification_key(message: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        message["type"],
        message.get("alert"),
        message.get("customer"),
        message.get("contract"),
        tuple(sorted((message.get("group") or {}).items())),
    )


def check_webhooks(
    expected: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]]
) -> None:
    actual = sorted(
        _notification_key({k: m.get(k) for k in ("type", "alert", "customer", "contract", "group")})
        for m in sent
    )
    wanted = sorted(_notification_key(m) for m in expected)
    # Expected messages name only some refs: compare on the refs each one gives.
    assert len(actual) == len(wanted), (actual, wanted)
    for message in expected:
        hit = next(
            (
                a
                for a in actual
                if a[0] == message["type"]
                and all(
                    message.get(k) is None or message[k] == a[i]
                    for i, k in ((1, "alert"), (2, "customer"), (3, "contract"))
                )
                and ("group" not in message or a[4] == tuple(sorted(message["group"].items())))
            ),
            None,
        )
        assert hit is not None, (message, actual)
        actual.remove(hit)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_numbers_come_out_of_the_core(path: Path) -> None:
    scenario = json.loads(path.read_text())
    world = World.build(scenario["setup"])
    for step in scenario["steps"]:
        now = ts(step["now"])
        world.notifications.clear()
        world.run_jobs(now)
        world.ingest(step.get("events", []), now)
        world.run_jobs(now)
        expect = step["expect"]
        for wanted in expect.get("draft_invoices", []):
            check_invoice(
                wanted, _draft(world, wanted["contract"], wanted["period_starting_at"], now)
            )
        for wanted in expect.get("finalized_invoices", []):
            key = (wanted["contract"], ts(wanted["period_starting_at"]))
            invoice = world.finalized[key]
            assert invoice.status.value == wanted["status"]
            check_invoice(wanted, invoice)
            if "late_events" in wanted:
                contract = world.contracts[wanted["contract"]]
                period = (invoice.starting_at, invoice.ending_before)
                from billing.periods import Period

                assert (
                    world.late_events(contract.customer_id, Period(*period))
                    == wanted["late_events"]
                )
        for wanted in expect.get("balances", []):
            views = [
                v
                for v in world.views(wanted["customer"], now)
                if v.segment.name == wanted["name"] and v.segment.live_at(now)
            ]
            assert views, wanted
            remaining = sum((v.remaining_after_drafts for v in views), Decimal(0))
            assert remaining == Decimal(wanted["remaining_after_drafts"])
        for wanted in expect.get("alert_states", []):
            states = world.alert_states[(wanted["alert"], wanted["customer"])]
            assert states[groups(wanted.get("group"))].state.value == wanted["state"], wanted
        if "webhooks" in expect:
            check_webhooks(expect["webhooks"], world.notifications)
