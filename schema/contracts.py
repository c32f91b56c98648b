"""Contracts and their terms, edits and packages (SPEC §5)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from schema.catalog import Tier, TierInput
from schema.enums import (
    BillingAnchor,
    BillingFrequency,
    BillingProvider,
    CommitType,
    OverrideType,
    RateType,
    TierMode,
)


@strawberry.type
class Price:
    rate_type: RateType
    price: Decimal | None
    tiers: list[Tier]
    tier_mode: TierMode
    package_size: Decimal | None
    fraction: Decimal | None


@strawberry.type
class Override:
    id: strawberry.ID
    product_id: strawberry.ID
    starting_at: datetime
    ending_before: datetime | None
    type: OverrideType
    pricing_group_values: JSON | None
    multiplier: Decimal | None
    overwrite_rate: Price | None
    priority: int | None


@strawberry.type
class Credit:
    id: strawberry.ID
    name: str
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None


@strawberry.type
class RecurringCredit:
    id: strawberry.ID
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_at: datetime
    ending_before: datetime | None
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None


@strawberry.type
class Commit:
    id: strawberry.ID
    name: str
    product_id: strawberry.ID
    type: CommitType
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None
    invoice_at: datetime | None


@strawberry.type
class QuantityChange:
    starting_at: datetime
    quantity: Decimal


@strawberry.type
class Subscription:
    id: strawberry.ID
    product_id: strawberry.ID
    quantity_schedule: list[QuantityChange]
    proration: bool


@strawberry.type
class ScheduledCharge:
    id: strawberry.ID
    product_id: strawberry.ID
    timestamp: datetime
    amount: Decimal
    name: str


@strawberry.type(description="One recorded change of a contract (version 1 is its creation).")
class ContractEdit:
    version: int
    kind: str
    changes: JSON
    actor: str
    created_at: datetime


@strawberry.type(description="What a customer buys: a rate card and terms over time.")
class Contract:
    id: strawberry.ID
    customer_id: strawberry.ID
    rate_card_id: strawberry.ID
    starting_at: datetime
    ending_before: datetime | None
    billing_frequency: BillingFrequency
    billing_anchor: BillingAnchor
    net_payment_terms_days: int
    billing_provider: BillingProvider
    overrides: list[Override]
    credits: list[Credit]
    recurring_credits: list[RecurringCredit]
    commits: list[Commit]
    subscriptions: list[Subscription]
    scheduled_charges: list[ScheduledCharge]
    archived_at: datetime | None

    @strawberry.field(description="Every change of the contract, oldest first.")
    async def edits(self, info: Info[Any, Any]) -> list[ContractEdit]:
        found: list[ContractEdit] = await info.context.loaders.contract_edits.load(self.id)
        return found


@strawberry.input
class PriceInput:
    rate_type: RateType
    price: Decimal | None = None
    tiers: list[TierInput] = strawberry.field(default_factory=list)
    tier_mode: TierMode = TierMode.GRADUATED
    package_size: Decimal | None = None
    fraction: Decimal | None = None


@strawberry.input
class OverrideInput:
    product_id: strawberry.ID
    starting_at: datetime
    type: OverrideType
    ending_before: datetime | None = None
    pricing_group_values: JSON | None = None
    multiplier: Decimal | None = None
    overwrite_rate: PriceInput | None = None
    priority: int | None = None


@strawberry.input
class CreditInput:
    name: str
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None


@strawberry.input
class RecurringCreditInput:
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_at: datetime
    ending_before: datetime | None = None
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None


@strawberry.input
class CommitInput:
    name: str
    product_id: strawberry.ID
    type: CommitType
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None
    invoice_at: datetime | None = None


@strawberry.input
class QuantityChangeInput:
    starting_at: datetime
    quantity: Decimal


@strawberry.input
class SubscriptionInput:
    product_id: strawberry.ID
    quantity_schedule: list[QuantityChangeInput]
    proration: bool = True


@strawberry.input
class ScheduledChargeInput:
    product_id: strawberry.ID
    timestamp: datetime
    amount: Decimal
    name: str


@strawberry.input
class CreateContractInput:
    customer_id: strawberry.ID
    rate_card_id: strawberry.ID
    starting_at: datetime
    ending_before: datetime | None = None
    billing_frequency: BillingFrequency = BillingFrequency.MONTHLY
    billing_anchor: BillingAnchor = BillingAnchor.FIRST_OF_MONTH
    net_payment_terms_days: int = 30
    billing_provider: BillingProvider = strawberry.field(
        default=BillingProvider.NONE,
        description="STRIPE: finalized invoices are pushed to the customer's Stripe customer.",
    )
    overrides: list[OverrideInput] = strawberry.field(default_factory=list)
    credits: list[CreditInput] = strawberry.field(default_factory=list)
    recurring_credits: list[RecurringCreditInput] = strawberry.field(default_factory=list)
    commits: list[CommitInput] = strawberry.field(default_factory=list)
    subscriptions: list[SubscriptionInput] = strawberry.field(default_factory=list)
    scheduled_charges: list[ScheduledChargeInput] = strawberry.field(default_factory=list)
    uniqueness_key: str | None = None


@strawberry.input(description="The new end of a contract; null makes it open-ended.")
class EndDateInput:
    ending_before: datetime | None


@strawberry.input(
    description="One edit of a contract: terms to add, terms to archive (by id), a new end "
    "date. Draft invoices re-rate at once; finalized invoices never change."
)
class EditContractInput:
    contract_id: strawberry.ID
    add_overrides: list[OverrideInput] = strawberry.field(default_factory=list)
    add_credits: list[CreditInput] = strawberry.field(default_factory=list)
    add_recurring_credits: list[RecurringCreditInput] = strawberry.field(default_factory=list)
    add_commits: list[CommitInput] = strawberry.field(default_factory=list)
    add_subscriptions: list[SubscriptionInput] = strawberry.field(default_factory=list)
    add_scheduled_charges: list[ScheduledChargeInput] = strawberry.field(default_factory=list)
    archive_term_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    update_end_date: EndDateInput | None = None
    billing_provider: BillingProvider | None = strawberry.field(
        default=None, description="Where invoices finalized from now on are sent."
    )


@strawberry.type
class PackageCredit:
    name: str
    amount: Decimal
    starting_offset: str
    ending_offset: str
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None


@strawberry.type
class PackageRecurringCredit:
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_offset: str
    ending_offset: str | None
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None


@strawberry.type
class PackageCommit:
    name: str
    product_id: strawberry.ID
    type: CommitType
    amount: Decimal
    starting_offset: str
    ending_offset: str
    priority: int | None
    applicable_product_ids: list[strawberry.ID] | None
    invoice_offset: str | None


@strawberry.type
class PackageSubscription:
    product_id: strawberry.ID
    quantity: Decimal
    starting_offset: str
    proration: bool


@strawberry.type(
    description="A contract template; term times are ISO-8601 offsets from the contract start."
)
class Package:
    id: strawberry.ID
    name: str
    rate_card_id: strawberry.ID
    billing_frequency: BillingFrequency
    billing_anchor: BillingAnchor
    net_payment_terms_days: int
    duration: str | None
    credits: list[PackageCredit]
    recurring_credits: list[PackageRecurringCredit]
    commits: list[PackageCommit]
    subscriptions: list[PackageSubscription]
    archived_at: datetime | None


@strawberry.input
class PackageCreditInput:
    name: str
    amount: Decimal
    ending_offset: str
    starting_offset: str = "P0D"
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None


@strawberry.input
class PackageRecurringCreditInput:
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_offset: str = "P0D"
    ending_offset: str | None = None
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None


@strawberry.input
class PackageCommitInput:
    name: str
    product_id: strawberry.ID
    type: CommitType
    amount: Decimal
    ending_offset: str
    starting_offset: str = "P0D"
    priority: int | None = None
    applicable_product_ids: list[strawberry.ID] | None = None
    invoice_offset: str | None = None


@strawberry.input
class PackageSubscriptionInput:
    product_id: strawberry.ID
    quantity: Decimal
    starting_offset: str = "P0D"
    proration: bool = True


@strawberry.input
class CreatePackageInput:
    name: str
    rate_card_id: strawberry.ID
    billing_frequency: BillingFrequency = BillingFrequency.MONTHLY
    billing_anchor: BillingAnchor = BillingAnchor.FIRST_OF_MONTH
    net_payment_terms_days: int = 30
    duration: str | None = None
    credits: list[PackageCreditInput] = strawberry.field(default_factory=list)
    recurring_credits: list[PackageRecurringCreditInput] = strawberry.field(default_factory=list)
    commits: list[PackageCommitInput] = strawberry.field(default_factory=list)
    subscriptions: list[PackageSubscriptionInput] = strawberry.field(default_factory=list)
    uniqueness_key: str | None = None


@strawberry.input
class CreateContractFromPackageInput:
    package_id: strawberry.ID
    customer_id: strawberry.ID
    starting_at: datetime
    uniqueness_key: str | None = None
    billing_provider: BillingProvider = BillingProvider.NONE
