"""``meterline import`` and ``meterline export invoices`` through the Typer app, against the
real database and Redis of the ``env`` fixture (SQLite, and PostgreSQL when configured).

The import judges events at the system clock's time, so these tests set the fixture's clock
to now and date their events just before it."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from meterline import invoice_export
from meterline.cli import app
from tests.api.support import (
    contract,
    customer,
    data,
    drafts,
    llm,
    metric,
    product,
    rate,
    rate_card,
    send,
    shop,
)
from tests.api.worker_support import at, messages
from tests.conftest import Env
from tests.integration.support import search

CREATE_ALERT = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
VOID = "mutation($id: ID!) { voidInvoice(id: $id) { id } }"
REGENERATE = "mutation($id: ID!) { regenerateInvoice(id: $id) { id } }"


async def meterline(env: Env, *args: str) -> Result:
    """Run the CLI in a thread (it runs its own event loop) with the fixture's database."""
    environ = {"DATABASE_URL": env.backend.database_url, "REDIS_URL": env.backend.redis_url}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=environ)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def figure(output: str, name: str) -> int:
    found = re.search(rf"│ {name}\s+│\s+([\d,]+) │", output)
    assert found, output
    return int(found.group(1).replace(",", ""))


async def live_shop(env: Env) -> tuple[Any, datetime]:
    """The ``shop`` world on a contract from the start of last month, the clock at now."""
    now = datetime.now(UTC).replace(microsecond=0)
    env.clock.set(now)
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0)
    return await shop(env, rate_from=iso(last_month), starting_at=iso(last_month)), now


async def drafted_tokens(env: Env, customer_id: str) -> Decimal:
    found = await drafts(env, customer_id)
    return sum(
        (
            Decimal(line["quantity"])
            for d in found
            for line in d["lines"]
            if line["type"] == "USAGE"
        ),
        Decimal(0),
    )


async def test_a_jsonl_import_judges_and_dedupes_as_the_api_does(env: Env, tmp_path: Path) -> None:
    acme, now = await live_shop(env)
    when = iso(now - timedelta(minutes=1))
    await send(env, llm("api-1", "acme", 5, at=when))
    lines = [
        '{"transaction_id": "imp-1", "customer_id": "acme", "event_type": "llm",'
        f' "timestamp": "{when}", "properties": {{"tokens": 0.1, "model": "gpt"}}}}',
        json.dumps(llm("imp-2", "acme", "2", at=when)),
        json.dumps(llm("imp-1", "acme", "999", at=when)),  # a duplicate within the file
        json.dumps(llm("api-1", "acme", "999", at=when)),  # sent through the API before
        json.dumps(llm("old", "acme", "1", at=iso(now - timedelta(days=40)))),
        json.dumps(llm("stranger", "nobody", "1", at=when)),
        "",
        "not json",
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = await meterline(env, "import", str(path), "--org", "Acme")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert [figure(out, n) for n in ("read", "accepted", "duplicates", "rejected")] == [7, 3, 2, 2]
    assert re.search(r"timestamp_too_old\s+│\s+1 │ line 5: timestamp is more", out), out
    assert re.search(r"invalid_line\s+│\s+1 │ line 8: the line is not valid JSON", out), out
    assert re.search(r"unknown_customer\s+│\s+1 │ line 6: no customer has", out), out
    assert await drafted_tokens(env, acme.customer_id) == Decimal("7.1")
    assert (await search(env, ["imp-1"]))["imp-1"].properties == {"tokens": "0.1", "model": "gpt"}

    again = await meterline(env, "import", str(path), "--org", "Acme", "--batch-size", "2")
    assert again.exit_code == 1
    assert [figure(again.stdout, n) for n in ("accepted", "duplicates", "rejected")] == [0, 5, 2]
    report = (await env.ingest([llm("imp-2", "acme", 2, at=when)])).json()
    assert report["duplicates"] == ["imp-2"]  # the API sees what the import stored
    assert await drafted_tokens(env, acme.customer_id) == Decimal("7.1")


async def test_a_csv_import_with_property_columns_is_exact(env: Env, tmp_path: Path) -> None:
    acme, now = await live_shop(env)
    when = iso(now - timedelta(minutes=1))
    path = tmp_path / "events.csv"
    path.write_text(
        "transaction_id,customer_id,event_type,timestamp,properties.tokens,properties\n"
        f'c-1,acme,llm,{when},12.50,"{{""model"": ""gpt""}}"\n'
        f'c-2,acme,llm,{when},,"{{""tokens"": 0.25, ""model"": ""gpt""}}"\n'
        f"c-3,acme,other,{when},1,\n"
    )
    result = await meterline(env, "import", str(path), "--org", "Acme")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert [figure(out, n) for n in ("read", "accepted", "duplicates", "rejected")] == [3, 3, 0, 0]
    assert re.search(r"no_matching_metric\s+│\s+1 │ line 4: no billable metric", out), out
    assert (await search(env, ["c-1"]))["c-1"].properties == {"tokens": "12.50", "model": "gpt"}
    assert await drafted_tokens(env, acme.customer_id) == Decimal("12.75")


async def test_an_import_asks_for_alert_evaluations_after_each_commit(
    env: Env, tmp_path: Path
) -> None:
    acme, now = await live_shop(env)
    alert = {"name": "Budget", "alertType": "SPEND_THRESHOLD_REACHED", "threshold": "1.00"}
    await data(env, CREATE_ALERT, input={**alert, "customerId": acme.customer_id})
    await env.run_jobs()
    when = iso(now - timedelta(minutes=1))
    path = tmp_path / "spend.jsonl"
    path.write_text("".join(json.dumps(llm(f"s{n}", "acme", 50, at=when)) + "\n" for n in range(3)))
    result = await meterline(env, "import", str(path), "--org", "Acme", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert len(await env.redis.queued_jobs()) == 1  # three commits, one queued evaluation
    await env.run_jobs()
    (triggered,) = await messages(env, "alert.triggered")
    assert triggered["data"]["value"] == "1.50"


async def test_unknown_organizations_and_unreadable_files_exit_2(env: Env, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(llm("a", "acme", 1)) + "\n")
    found = await meterline(env, "import", str(events), "--org", "Nobody")
    assert found.exit_code == 2 and "no organization is named 'Nobody'" in found.output
    exported = await meterline(
        env, "export", "invoices", "--org", "Nobody", "--since", "2026-01-01"
    )
    assert exported.exit_code == 2 and exported.stdout == ""
    text = tmp_path / "events.txt"
    text.write_text("")
    assert (await meterline(env, "import", str(text), "--org", "Acme")).exit_code == 2
    header = tmp_path / "bad.csv"
    header.write_text("transaction_id,customer,event_type,timestamp\n")
    bad = await meterline(env, "import", str(header), "--org", "Acme")
    assert bad.exit_code == 2 and "missing column(s) customer_id" in bad.output
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n" + json.dumps(llm("x", "acme", 1)).encode())
    judged = await meterline(env, "import", str(binary), "--org", "Acme")
    assert judged.exit_code == 1 and "line 1: the line is not valid UTF-8" in judged.stdout


async def test_finalized_and_voided_invoices_export_as_exact_csv(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metric_id = await metric(env)
    product_id = await product(
        env, "Tokens", billableMetricId=metric_id, presentationGroupKey=["model"]
    )
    customer_id = await customer(env, "Acme, Inc.", ["acme"])
    contract_id = (
        await contract(env, customer_id, await rate_card(env, rate(product_id, "0.015")))
    )["id"]
    await send(env, llm("a", "acme", "300.5", at="2026-04-05T00:00:00Z"))
    env.clock.set(at("2026-05-02T00:00:00Z"))
    await env.run_jobs()
    query = "query($id: ID!) { customer(id: $id) { invoices(first: 5) { nodes { id } } } }"
    (first,) = (await data(env, query, id=customer_id))["customer"]["invoices"]["nodes"]
    await data(env, VOID, id=first["id"])
    regenerated = (await data(env, REGENERATE, id=first["id"]))["regenerateInvoice"]["id"]

    output = tmp_path / "invoices.csv"
    args = ("export", "invoices", "--org", "Acme", "--since", "2026-04-01", "--output")
    result = await meterline(env, *args, str(output))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(output.open(newline="")))
    assert {r["invoice_id"]: r["status"] for r in rows} == {
        first["id"]: "void",
        regenerated: "finalized",
    }
    for row in rows:
        assert row["customer_id"] == customer_id and row["customer_name"] == "Acme, Inc."
        assert row["contract_id"] == contract_id and row["currency"] == "USD"
        assert (row["period_start"], row["period_end"]) == (
            "2026-04-01T00:00:00Z",
            "2026-05-01T00:00:00Z",
        )
        assert (row["line_type"], row["product_id"], row["group"]) == (
            "usage",
            product_id,
            '{"model":"gpt"}',
        )
        assert (row["quantity"], row["unit_price"], row["amount"]) == ("300.5", "0.015", "4.51")
        assert (row["invoice_subtotal"], row["invoice_total"]) == ("4.51", "4.51")
    by_id = {r["invoice_id"]: r for r in rows}
    assert by_id[first["id"]]["voided_at"] != "" and by_id[regenerated]["voided_at"] == ""
    assert by_id[regenerated]["replaces_invoice_id"] == first["id"]

    monkeypatch.setattr(invoice_export, "PAGE", 1)  # a page per invoice: the keyset holds
    per_invoice = await meterline(
        env, "export", "invoices", "--org", "Acme", "--since", "2026-04-01", "--no-lines"
    )
    assert per_invoice.exit_code == 0, per_invoice.output
    found = list(csv.DictReader(io.StringIO(per_invoice.stdout)))
    assert sorted((r["invoice_id"], r["status"], r["line_count"], r["total"]) for r in found) == [
        (invoice_id, by_id[invoice_id]["status"], "1", "4.51") for invoice_id in sorted(by_id)
    ]
    later = await meterline(env, "export", "invoices", "--org", "Acme", "--since", "2026-04-02")
    assert later.exit_code == 0 and len(later.stdout.splitlines()) == 1  # the header only
