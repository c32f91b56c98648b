"""Draft invoices and balances of customers, assembled on read from rollups (never raw
events), for many customers at once in a constant number of queries.

For each live contract, the open periods are those that have started, whose grace
deadline has not passed and that have no finalized invoice; each is assembled by the
billing core from the window's rollup partials, older drafts drawing balances first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from billing.catalog import ProductType
from billing.contracts import Contract
from billing.drawdown import (
    BalanceView,
    LedgerEntry,
    balance_views,
    contract_segments,
)
from billing.invoices import Invoice
from billing.invoicing import BillingContext, Usage, assemble_open, open_drafts
from billing.metering import UsageEvent
from billing.periods import Period, grace_deadline, periods
from billing.preview import Preview, PreviewMode, preview_costs
from models.store.catalog import list_products, rate_cards_by_id
from models.store.contracts import contracts_of_customers
from models.store.invoices import closed_periods, ledgers_of
from models.store.metrics import active_metrics
from models.store.rollup_reads import window_partials_many


@dataclass(frozen=True)
class ContractDrafts:
    contract: Contract
    invoices: tuple[Invoice, ...]
    balances: tuple[BalanceView, ...]
    ledgers: dict[str, list[LedgerEntry]]


def open_periods(contract: Contract, now: datetime, grace: timedelta) -> list[Period]:
    """Periods that have started and are not past their grace deadline, oldest first."""
    horizon = now + timedelta(microseconds=1)
    return [p for p in periods(contract.schedule, horizon) if grace_deadline(p, grace) > now]


@dataclass(frozen=True)
class _Open:
    """A contract with its pricing context, its open windows and its balances' ledgers."""

    contract: Contract
    context: BillingContext
    windows: list[tuple[Period, Usage]]
    ledgers: dict[str, list[LedgerEntry]]


async def billing_contexts(
    conn: AsyncConnection, org_id: str, contracts: Sequence[Contract]
) -> dict[str, BillingContext]:
    """Per contract id, what pricing it needs: its rate card, the products and the
    metrics that usage products price."""
    products = {p.id: p for p in await list_products(conn, org_id)}
    priced = {p.billable_metric_id for p in products.values() if p.type is ProductType.USAGE}
    metrics = {m.id: m for m in await active_metrics(conn, org_id) if m.id in priced}
    cards = await rate_cards_by_id(conn, org_id, [c.rate_card_id for c in contracts])
    return {c.id: BillingContext(c, cards[c.rate_card_id], products, metrics) for c in contracts}


async def _open_contracts(
    conn: AsyncConnection,
    org_id: str,
    by_customer: Mapping[str, Sequence[Contract]],
    now: datetime,
    grace: timedelta,
) -> list[_Open]:
    contracts = [c for found in by_customer.values() for c in found]
    if not contracts:
        return []
    contexts = await billing_contexts(conn, org_id, contracts)
    metrics = next(iter(contexts.values())).metrics
    ledgers = await ledgers_of(conn, org_id, list(by_customer))
    closed = await closed_periods(conn, org_id, [c.id for c in contracts])
    plans = {
        c.id: [p for p in open_periods(c, now, grace) if (c.id, p.starting_at) not in closed]
        for c in contracts
    }
    requests = [
        (c.customer_id, p.starting_at, p.ending_before) for c in contracts for p in plans[c.id]
    ]
    usages = iter(await window_partials_many(conn, org_id, requests, list(metrics.values())))
    return [
        _Open(
            contract,
            contexts[contract.id],
            [(p, next(usages)) for p in plans[contract.id]],
            ledgers,
        )
        for contract in contracts
    ]


async def drafts_of_customers(
    conn: AsyncConnection,
    org_id: str,
    by_customer: Mapping[str, Sequence[Contract]],
    now: datetime,
    grace: timedelta,
) -> dict[str, list[ContractDrafts]]:
    """Per customer id of ``by_customer`` (its live contracts, see
    :func:`models.store.contracts.contracts_of_customers`): for each contract, its open
    drafts and its balance segments (started by now or by an open period's end) with what
    those drafts would draw."""
    result: dict[str, list[ContractDrafts]] = {c: [] for c in by_customer}
    for found in await _open_contracts(conn, org_id, by_customer, now, grace):
        invoices = assemble_open(found.context, found.windows, found.ledgers)
        until = max([now, *(p.ending_before for p, _ in found.windows)])
        segments = contract_segments(found.contract, until)
        mine = {s.id: found.ledgers.get(s.id, []) for s in segments}
        pending = [d for invoice in invoices for d in invoice.deductions]
        views = balance_views(segments, mine, pending)
        result[found.contract.customer_id].append(
            ContractDrafts(found.contract, invoices, views, mine)
        )
    return result


async def preview_customer(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    events: Sequence[UsageEvent],
    mode: PreviewMode,
    now: datetime,
    grace: timedelta,
) -> list[Preview]:
    """Every open draft of the customer as it is and as it would be with hypothetical
    ``events`` added (``merge``) or instead of the period's events (``replace``); nothing
    is stored. Each period draws what the ledger holds minus the older current drafts."""
    by_customer = await contracts_of_customers(conn, org_id, [customer_id])
    return [
        preview_costs(found.context, period, usage, events, mode, available)
        for found in await _open_contracts(conn, org_id, by_customer, now, grace)
        for period, usage, available, _ in open_drafts(found.context, found.windows, found.ledgers)
    ]


async def customer_drafts(
    conn: AsyncConnection, org_id: str, customer_id: str, now: datetime, grace: timedelta
) -> list[ContractDrafts]:
    """The drafts and balances of one customer's live contracts."""
    by_customer = await contracts_of_customers(conn, org_id, [customer_id])
    return (await drafts_of_customers(conn, org_id, by_customer, now, grace))[customer_id]
