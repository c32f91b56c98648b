"""The ingest expectations of shared scenario 05 hold when its events are posted."""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.metering import MetricDefinition
from models.codec import decode
from tests.conftest import Env
from tests.integration.support import add_customer, add_metric, quantity_total, window

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(os.environ.get("METERLINE_SCENARIOS", REPO.parent / "shared" / "scenarios"))
SCENARIO = SCENARIOS / "05_ingest_validation.json"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def scenario() -> dict[str, Any]:
    if not SCENARIO.exists():
        pytest.fail(f"scenario file missing: {SCENARIO}")
    return json.loads(SCENARIO.read_text())


def pairs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": item["index"], "code": item["code"]} for item in items]


async def test_scenario_05_ingest_expectations(env: Env, scenario: dict[str, Any]) -> None:
    setup = scenario["setup"]
    metrics = {
        m["ref"]: await add_metric(env, decode(MetricDefinition, {**m, "id": ""}))
        for m in setup["billable_metrics"]
    }
    customers = {
        c["ref"]: await add_customer(env, c["name"], c.get("ingest_aliases", []))
        for c in setup["customers"]
    }
    for step in scenario["steps"]:
        env.clock.set(moment(step["now"]))
        events = [
            {**e, "customer_id": customers[e["customer_id"][4:]]}
            if str(e.get("customer_id", "")).startswith("ref:")
            else e
            for e in step.get("events", [])
        ]
        if not events:
            continue
        response = await env.ingest(events)
        assert response.status_code == 200, response.text
        report = response.json()
        expected = step["expect"].get("ingest")
        if expected is None:
            continue
        assert report["accepted"] == expected["accepted"], report
        assert len(report["duplicates"]) == expected["duplicates"], report
        assert pairs(report["rejected"]) == expected["rejected"], report
        assert pairs(report["warnings"]) == expected["warnings"], report

    # the events that landed are the ones the draft invoice will count
    [draft] = scenario["steps"][-1]["expect"]["draft_invoices"]
    [line] = draft["lines"]
    customer = customers[
        next(k["customer"] for k in setup["contracts"] if k["ref"] == draft["contract"])
    ]
    metric_ref = next(
        p["billable_metric"] for p in setup["products"] if p["ref"] == line["product"]
    )
    start = moment(draft["period_starting_at"])
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    found = await window(env, customer, [metrics[metric_ref]], start, end)
    count, _ = quantity_total(found[metrics[metric_ref].id])
    assert Decimal(count) == Decimal(line["quantity"])
