"""Customers and what hangs off them: contracts, invoices, balances, usage, alerts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from schema.enums import BalanceKind, LedgerEntryType
from schema.pagination import DEFAULT_PAGE, Connection

if TYPE_CHECKING:
    from schema.alerts import Alert
    from schema.contracts import Contract
    from schema.invoices import Invoice


@strawberry.enum
class UsageWindow(StrEnum):
    HOUR = "hour"
    DAY = "day"


@strawberry.type
class LedgerEntry:
    type: LedgerEntryType
    amount: Decimal
    timestamp: datetime
    invoice_id: strawberry.ID | None


@strawberry.type(description="One credit or commit segment of a customer's contracts.")
class Balance:
    id: strawberry.ID
    source_id: strawberry.ID
    contract_id: strawberry.ID
    name: str
    kind: BalanceKind
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None
    product_id: strawberry.ID | None
    ledger: list[LedgerEntry]
    ledger_balance: Decimal = strawberry.field(description="Sum of the ledger entries.")
    pending_draft_deduction: Decimal = strawberry.field(
        description="What the open draft invoices would draw."
    )
    remaining_after_drafts: Decimal


@strawberry.type(description="A metric's quantity in one hour or day, for one group value.")
class UsagePoint:
    starting_at: datetime
    ending_before: datetime
    group: JSON
    quantity: Decimal


@strawberry.type
class Customer:
    id: strawberry.ID
    name: str
    ingest_aliases: list[str]
    custom_fields: JSON
    stripe_customer_id: str | None
    stripe_collection_method: str | None
    created_at: datetime
    archived_at: datetime | None

    @strawberry.field(description="The customer's live contracts, oldest first.")
    async def contracts(
        self, info: Info[Any, Any]
    ) -> list[Annotated[Contract, strawberry.lazy("schema.contracts")]]:
        found: list[Contract] = await info.context.loaders.customer_contracts.load(self.id)
        return found

    @strawberry.field(description="The drafts of every open period of every live contract.")
    async def draft_invoices(
        self, info: Info[Any, Any]
    ) -> list[Annotated[Invoice, strawberry.lazy("schema.invoices")]]:
        found: list[Invoice] = await info.context.loaders.draft_invoices.load(self.id)
        return found

    @strawberry.field(description="Finalized and voided invoices, newest period first.")
    async def invoices(
        self, info: Info[Any, Any], first: int = DEFAULT_PAGE, after: str | None = None
    ) -> Connection[Annotated[Invoice, strawberry.lazy("schema.invoices")]]:
        found: Connection[Invoice] = await info.context.loaders.invoice_pages.load(
            (self.id, first, after)
        )
        return found

    @strawberry.field(description="Credit and commit balances live now or drawn by a draft.")
    async def balances(self, info: Info[Any, Any], include_expired: bool = False) -> list[Balance]:
        found: list[Balance] = await info.context.loaders.balances(self.id, include_expired)
        return found

    @strawberry.field(
        description="A metric's quantity per hour or day over [startingAt, endingBefore), "
        "per value of `groupKey` (omit it for one total series). Empty buckets are left out."
    )
    async def usage(
        self,
        info: Info[Any, Any],
        billable_metric_id: strawberry.ID,
        starting_at: datetime,
        ending_before: datetime,
        window_size: UsageWindow = UsageWindow.DAY,
        group_key: list[str] | None = None,
    ) -> list[UsagePoint]:
        found: list[UsagePoint] = await info.context.loaders.usage(
            self.id, billable_metric_id, starting_at, ending_before, window_size, group_key
        )
        return found

    @strawberry.field(description="Alerts that watch this customer, with its state in each.")
    async def alerts(
        self, info: Info[Any, Any]
    ) -> list[Annotated[Alert, strawberry.lazy("schema.alerts")]]:
        found: list[Alert] = await info.context.loaders.alerts.load(self.id)
        return found


@strawberry.input
class CreateCustomerInput:
    name: str
    ingest_aliases: list[str] = strawberry.field(default_factory=list)
    custom_fields: JSON | None = None
    stripe_customer_id: str | None = None
    stripe_collection_method: str | None = None
    uniqueness_key: str | None = None


@strawberry.input(description="Fields to change; omitted fields keep their value.")
class UpdateCustomerInput:
    id: strawberry.ID
    name: str | None = None
    add_ingest_aliases: list[str] = strawberry.field(default_factory=list)
    custom_fields: JSON | None = None


@strawberry.input(description="Link (or, with nulls, unlink) the customer to Stripe.")
class BillingProviderInput:
    customer_id: strawberry.ID
    stripe_customer_id: str | None
    stripe_collection_method: str | None = "charge_automatically"
