"""Per-request data access for nested fields: DataLoaders batch what a page of customers
needs (contracts, drafts, balances, edits) into a constant number of queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from billing.contracts import BillingProvider
from billing.contracts import Contract as CoreContract
from billing.drawdown import segment_start_entry
from billing.errors import ValidationError
from billing.invoices import Invoice as CoreInvoice
from billing.provider_invoice import from_provider_amount
from models.drafts import ContractDrafts, drafts_of_customers
from models.store.alerts import AlertRecord, alerts_of_customers
from models.store.api_keys import Principal
from models.store.contracts import ContractRecord, EditRecord, contracts_of_customers, edits_of
from models.store.invoice_syncs import Sync, syncs_of
from models.store.invoices import StoredInvoice, first_invoice_pages, invoices_page
from models.store.metrics import list_metrics
from models.store.organizations import grace_of
from models.store.rollup_reads import usage_series
from resolvers.graphql.convert import connection
from resolvers.services import Services
from schema.alerts import Alert
from schema.contracts import Contract, ContractEdit
from schema.customers import Balance, LedgerEntry, UsagePoint, UsageWindow
from schema.invoices import Invoice
from schema.pagination import Connection
from schema.stripe import InvoiceBillingProvider
from schema.views import view

USAGE_SPAN = {UsageWindow.HOUR: timedelta(days=31), UsageWindow.DAY: timedelta(days=366)}
WINDOW = {UsageWindow.HOUR: timedelta(hours=1), UsageWindow.DAY: timedelta(days=1)}


def contract_view(record: ContractRecord) -> Contract:
    return view(Contract, record.contract, record)


def draft_view(invoice: CoreInvoice) -> Invoice:
    return view(
        Invoice,
        invoice,
        id=None,
        late_events=0,
        finalized_at=None,
        voided_at=None,
        replaces_invoice_id=None,
    )


def stored_invoice_view(stored: StoredInvoice) -> Invoice:
    return view(Invoice, stored, stored.invoice)


def billing_provider_view(
    sync: Sync, currency: str, customer_token: bool
) -> InvoiceBillingProvider:
    total = sync.stripe_total
    return view(
        InvoiceBillingProvider,
        sync,
        provider=BillingProvider.STRIPE,
        provider_invoice_id=sync.stripe_invoice_id,
        provider_total=None if total is None else from_provider_amount(total, currency),
        error=None if customer_token else sync.last_error,
    )


def alert_view(record: AlertRecord) -> Alert:
    return view(Alert, record.rule, record)


class Loaders:
    """Everything nested fields read, scoped to the caller's organization."""

    def __init__(self, services: Services, principal: Principal | None) -> None:
        self.services = services
        self.org_id = principal.org_id if principal else ""
        self._grace: timedelta | None = None
        self.live_contracts = DataLoader(self._live_contracts)
        self.customer_contracts = DataLoader(self._customer_contracts)
        self.billing = DataLoader(self._billing)
        self.draft_invoices = DataLoader(self._draft_invoices)
        self.contract_edits = DataLoader(self._contract_edits)
        self.invoice_pages = DataLoader(self._invoice_pages)
        self.alerts = DataLoader(self._alerts)
        self.invoice_syncs = DataLoader(self._invoice_syncs)
        self._customer_token = principal is not None and principal.customer_id is not None

    async def grace(self, conn: AsyncConnection) -> timedelta:
        """The organization's grace period (its own setting, else the installation's)."""
        if self._grace is None:
            self._grace = await grace_of(conn, self.org_id, self.services.grace_period)
        return self._grace

    async def _live_contracts(self, customer_ids: list[str]) -> list[list[CoreContract]]:
        async with self.services.db.read() as conn:
            found = await contracts_of_customers(conn, self.org_id, customer_ids)
        return [found[i] for i in customer_ids]

    async def _customer_contracts(self, customer_ids: list[str]) -> list[list[Contract]]:
        found = await self.live_contracts.load_many(customer_ids)
        return [[view(Contract, c, archived_at=None) for c in live] for live in found]

    async def _billing(self, customer_ids: list[str]) -> list[list[ContractDrafts]]:
        contracts = await self.live_contracts.load_many(customer_ids)
        async with self.services.db.read() as conn:
            found = await drafts_of_customers(
                conn,
                self.org_id,
                dict(zip(customer_ids, contracts, strict=True)),
                self.services.clock(),
                await self.grace(conn),
            )
        return [found[i] for i in customer_ids]

    async def _draft_invoices(self, customer_ids: list[str]) -> list[list[Invoice]]:
        billing = await self.billing.load_many(customer_ids)
        return [[draft_view(i) for d in drafts for i in d.invoices] for drafts in billing]

    async def _invoice_syncs(
        self, keys: list[tuple[str, str]]
    ) -> list[InvoiceBillingProvider | None]:
        """(invoice id, currency) → the invoice at Stripe, or None."""
        async with self.services.db.read() as conn:
            found = await syncs_of(conn, self.org_id, [invoice_id for invoice_id, _ in keys])
        return [
            None
            if invoice_id not in found
            else billing_provider_view(found[invoice_id], currency, self._customer_token)
            for invoice_id, currency in keys
        ]

    async def _contract_edits(self, contract_ids: list[str]) -> list[list[ContractEdit]]:
        async with self.services.db.read() as conn:
            found: dict[str, list[EditRecord]] = await edits_of(conn, self.org_id, contract_ids)
        return [[view(ContractEdit, e) for e in found[i]] for i in contract_ids]

    async def balances(self, customer_id: str, include_expired: bool) -> list[Balance]:
        now = self.services.clock()
        result = []
        for drafts in await self.billing.load(customer_id):
            for balance in drafts.balances:
                segment = balance.segment
                if segment.starting_at > now:
                    continue
                live = segment.live_at(now) or balance.pending_draft_deduction
                if not (live or include_expired):
                    continue
                entries = drafts.ledgers.get(segment.id, [])
                result.append(
                    view(
                        Balance,
                        balance,
                        segment,
                        contract_id=drafts.contract.id,
                        ledger=[
                            view(LedgerEntry, e) for e in [segment_start_entry(segment), *entries]
                        ],
                    )
                )
        return result

    async def _invoice_pages(
        self, keys: list[tuple[str, int, str | None]]
    ) -> list[Connection[Invoice]]:
        """First pages of many customers in one query; later pages (a cursor) one by one."""
        result: dict[tuple[str, int, str | None], Connection[Invoice]] = {}
        async with self.services.db.read() as conn:
            for first in {k[1] for k in keys if k[2] is None}:
                customers = [k[0] for k in keys if k[1:] == (first, None)]
                pages = await first_invoice_pages(conn, self.org_id, customers, first)
                for customer_id in customers:
                    result[(customer_id, first, None)] = connection(
                        pages[customer_id], stored_invoice_view
                    )
            for key in keys:
                if key[2] is not None:
                    found = await invoices_page(conn, self.org_id, *key)
                    result[key] = connection(found, stored_invoice_view)
        return [result[key] for key in keys]

    async def usage(
        self,
        customer_id: str,
        metric_id: str,
        starting_at: datetime,
        ending_before: datetime,
        window: UsageWindow,
        group_key: list[str] | None,
    ) -> list[UsagePoint]:
        if ending_before <= starting_at:
            raise ValidationError("ending_before", "must be after starting_at")
        if ending_before - starting_at > USAGE_SPAN[window]:
            raise ValidationError(
                "ending_before",
                f"{window.value} windows span at most {USAGE_SPAN[window].days} days",
            )
        async with self.services.db.read() as conn:
            found = await list_metrics(
                conn, self.org_id, include_archived=True, metric_id=metric_id
            )
            if not found:
                raise ValidationError("billable_metric_id", f"no billable metric {metric_id!r}")
            series = await usage_series(
                conn,
                self.org_id,
                customer_id,
                found[0].definition,
                starting_at,
                ending_before,
                window.value,
                group_key,
            )
        return [
            UsagePoint(
                starting_at=bucket,
                ending_before=bucket + WINDOW[window],
                group=cast(JSON, dict(group)),
                quantity=quantity,
            )
            for bucket, group, quantity in series
        ]

    async def _alerts(self, customer_ids: list[str]) -> list[list[Alert]]:
        async with self.services.db.read() as conn:
            found = await alerts_of_customers(conn, self.org_id, customer_ids)
        return [[alert_view(record) for record in found[c]] for c in customer_ids]
