"""Draft invoices of a customer, assembled on read from rollups (never raw events).

For each live contract, the open periods are those that have started and whose grace
deadline has not passed; each is assembled by the billing core from the window's rollup
partials, older drafts drawing balances first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contracts import Contract
from billing.invoices import Invoice
from billing.invoicing import BillingContext, Usage, assemble_open
from billing.periods import Period, grace_deadline, periods
from models.store.catalog import list_products, load_rate_card
from models.store.contracts import customer_contracts
from models.store.metrics import active_metrics
from models.store.rollups import window_partials


@dataclass(frozen=True)
class ContractDrafts:
    contract: Contract
    invoices: tuple[Invoice, ...]


def open_periods(contract: Contract, now: datetime, grace: timedelta) -> list[Period]:
    """Periods that have started and are not past their grace deadline, oldest first."""
    horizon = now + timedelta(microseconds=1)
    return [p for p in periods(contract.schedule, horizon) if grace_deadline(p, grace) > now]


async def customer_drafts(
    conn: AsyncConnection, org_id: str, customer_id: str, now: datetime, grace: timedelta
) -> list[ContractDrafts]:
    found = await customer_contracts(conn, org_id, customer_id)
    if not found:
        return []
    products = {p.id: p for p in await list_products(conn, org_id)}
    metrics = {m.id: m for m in await active_metrics(conn, org_id)}
    result = []
    for contract in found:
        card = await load_rate_card(conn, org_id, contract.rate_card_id)
        context = BillingContext(contract, card, products, metrics)
        windows: list[tuple[Period, Usage]] = []
        for period in open_periods(contract, now, grace):
            usage = await window_partials(
                conn,
                org_id,
                customer_id,
                list(metrics.values()),
                period.starting_at,
                period.ending_before,
            )
            windows.append((period, usage))
        result.append(ContractDrafts(contract, assemble_open(context, windows, {})))
    return result
