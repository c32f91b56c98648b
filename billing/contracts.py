"""A contract's terms (SPEC §5) as plain frozen values: overrides, credits, recurring
credits, commits, subscriptions and scheduled charges.

Ids are ``str``; datetimes are aware UTC; money is ``Decimal`` in the rate card's currency.
``applicable_product_ids`` None means every product.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.catalog import PriceSpec
from billing.metering import GroupValues
from billing.periods import BillingAnchor, BillingFrequency, BillingSchedule, schedule_for


class BillingProvider(StrEnum):
    """Where a contract's finalized invoices are sent for collection (SPEC §11)."""

    NONE = "none"
    STRIPE = "stripe"


class OverrideType(StrEnum):
    MULTIPLIER = "multiplier"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class Override:
    """Changes the price of ``product_id`` for lines whose period start falls in
    ``[starting_at, ending_before)``; ``pricing_group_values`` None applies to every group,
    else every given pair must match the line's pricing group values."""

    product_id: str
    starting_at: datetime
    type: OverrideType
    ending_before: datetime | None = None
    pricing_group_values: GroupValues | None = None
    multiplier: Decimal | None = None
    overwrite_rate: PriceSpec | None = None
    priority: int | None = None
    id: str = ""


@dataclass(frozen=True)
class Credit:
    id: str
    name: str
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None


@dataclass(frozen=True)
class RecurringCredit:
    """A new credit of ``amount`` every ``frequency`` period, expiring at its end."""

    id: str
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_at: datetime
    ending_before: datetime | None = None
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None


class CommitType(StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"


@dataclass(frozen=True)
class Commit:
    """``product_id`` is the fixed product naming the commit's purchase/true-up lines."""

    id: str
    name: str
    product_id: str
    type: CommitType
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None
    invoice_at: datetime | None = None


@dataclass(frozen=True)
class QuantityChange:
    starting_at: datetime
    quantity: Decimal


@dataclass(frozen=True)
class Subscription:
    product_id: str
    quantity_schedule: tuple[QuantityChange, ...]
    proration: bool = True
    id: str = ""


@dataclass(frozen=True)
class ScheduledCharge:
    id: str
    product_id: str
    timestamp: datetime
    amount: Decimal
    name: str


TERM_PREFIXES = {
    "overrides": "ovr",
    "credits": "cred",
    "recurring_credits": "rcred",
    "commits": "cmt",
    "subscriptions": "sub",
    "scheduled_charges": "chg",
}
"""The contract's term fields (each a tuple of terms with an ``id``), and the prefix of
their ids."""


@dataclass(frozen=True)
class Contract:
    id: str
    customer_id: str
    rate_card_id: str
    starting_at: datetime
    ending_before: datetime | None = None
    billing_frequency: BillingFrequency = BillingFrequency.MONTHLY
    billing_anchor: BillingAnchor = BillingAnchor.FIRST_OF_MONTH
    net_payment_terms_days: int = 30
    overrides: tuple[Override, ...] = ()
    credits: tuple[Credit, ...] = ()
    recurring_credits: tuple[RecurringCredit, ...] = ()
    commits: tuple[Commit, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    scheduled_charges: tuple[ScheduledCharge, ...] = ()
    billing_provider: BillingProvider = BillingProvider.NONE

    @property
    def schedule(self) -> BillingSchedule:
        """The contract's billing periods (see :mod:`billing.periods`)."""
        return schedule_for(
            self.starting_at, self.ending_before, self.billing_frequency, self.billing_anchor
        )

    def in_force_at(self, moment: datetime) -> bool:
        """True when ``starting_at <= moment`` and (no end or ``moment < ending_before``)."""
        return self.starting_at <= moment and (
            self.ending_before is None or moment < self.ending_before
        )
