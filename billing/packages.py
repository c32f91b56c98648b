"""Packages (SPEC §5): contract templates whose term times are ISO-8601 offsets from the
contract's start, and their instantiation into a :class:`Contract`.

Offsets are parsed by :func:`billing.schedules.parse_duration` (calendar months first,
day clamped to the month's end, then the exact part). Money is ``Decimal`` in the rate
card's currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.contracts import (
    Commit,
    CommitType,
    Contract,
    Credit,
    QuantityChange,
    RecurringCredit,
    Subscription,
)
from billing.errors import ValidationError
from billing.periods import BillingAnchor, BillingFrequency
from billing.schedules import parse_duration
from billing.validation import validate_contract


@dataclass(frozen=True)
class PackageCredit:
    name: str
    amount: Decimal
    ending_offset: str
    starting_offset: str = "P0D"
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None


@dataclass(frozen=True)
class PackageRecurringCredit:
    name: str
    amount: Decimal
    frequency: BillingFrequency
    starting_offset: str = "P0D"
    ending_offset: str | None = None
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None


@dataclass(frozen=True)
class PackageCommit:
    name: str
    product_id: str
    type: CommitType
    amount: Decimal
    ending_offset: str
    starting_offset: str = "P0D"
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None
    invoice_offset: str | None = None


@dataclass(frozen=True)
class PackageSubscription:
    product_id: str
    quantity: Decimal
    starting_offset: str = "P0D"
    proration: bool = True


@dataclass(frozen=True)
class Package:
    """``duration`` (an offset) sets the contract's end; None leaves it open-ended."""

    id: str
    name: str
    rate_card_id: str
    billing_frequency: BillingFrequency = BillingFrequency.MONTHLY
    billing_anchor: BillingAnchor = BillingAnchor.FIRST_OF_MONTH
    net_payment_terms_days: int = 30
    duration: str | None = None
    credits: tuple[PackageCredit, ...] = ()
    recurring_credits: tuple[PackageRecurringCredit, ...] = ()
    commits: tuple[PackageCommit, ...] = ()
    subscriptions: tuple[PackageSubscription, ...] = ()


def _at(start: datetime, offset: str, field: str) -> datetime:
    return parse_duration(offset, field).applied_to(start)


def _maybe_at(start: datetime, offset: str | None, field: str) -> datetime | None:
    return None if offset is None else _at(start, offset, field)


def validate_package(package: Package) -> None:
    """Raise ``ValidationError`` naming the first malformed field: every offset must parse,
    and a contract instantiated at any start must be valid (checked at an arbitrary one)."""
    if not package.name.strip():
        raise ValidationError("name", "must not be empty")
    instantiate(
        package,
        "cus_check",
        datetime.fromisoformat("2000-01-01T00:00:00+00:00"),
        lambda prefix: f"{prefix}_check",
    )


def instantiate(
    package: Package, customer_id: str, starting_at: datetime, new_id: Callable[[str], str]
) -> Contract:
    """The contract ``package`` describes for ``customer_id`` starting at ``starting_at``:
    each term's times are ``starting_at`` shifted by its offsets; ``new_id(prefix)`` names
    the contract and its terms. The result is validated like any contract."""
    credits = tuple(
        Credit(
            id=new_id("cred"),
            name=c.name,
            amount=c.amount,
            starting_at=_at(starting_at, c.starting_offset, f"credits[{i}].starting_offset"),
            ending_before=_at(starting_at, c.ending_offset, f"credits[{i}].ending_offset"),
            priority=c.priority,
            applicable_product_ids=c.applicable_product_ids,
        )
        for i, c in enumerate(package.credits)
    )
    recurring = tuple(
        RecurringCredit(
            id=new_id("rcred"),
            name=r.name,
            amount=r.amount,
            frequency=r.frequency,
            starting_at=_at(
                starting_at, r.starting_offset, f"recurring_credits[{i}].starting_offset"
            ),
            ending_before=_maybe_at(
                starting_at, r.ending_offset, f"recurring_credits[{i}].ending_offset"
            ),
            priority=r.priority,
            applicable_product_ids=r.applicable_product_ids,
        )
        for i, r in enumerate(package.recurring_credits)
    )
    commits = tuple(
        Commit(
            id=new_id("cmt"),
            name=c.name,
            product_id=c.product_id,
            type=c.type,
            amount=c.amount,
            starting_at=_at(starting_at, c.starting_offset, f"commits[{i}].starting_offset"),
            ending_before=_at(starting_at, c.ending_offset, f"commits[{i}].ending_offset"),
            priority=c.priority,
            applicable_product_ids=c.applicable_product_ids,
            invoice_at=_maybe_at(starting_at, c.invoice_offset, f"commits[{i}].invoice_offset"),
        )
        for i, c in enumerate(package.commits)
    )
    subscriptions = tuple(
        Subscription(
            id=new_id("sub"),
            product_id=s.product_id,
            quantity_schedule=(
                QuantityChange(
                    _at(starting_at, s.starting_offset, f"subscriptions[{i}].starting_offset"),
                    s.quantity,
                ),
            ),
            proration=s.proration,
        )
        for i, s in enumerate(package.subscriptions)
    )
    contract = Contract(
        id=new_id("ctr"),
        customer_id=customer_id,
        rate_card_id=package.rate_card_id,
        starting_at=starting_at,
        ending_before=_maybe_at(starting_at, package.duration, "duration"),
        billing_frequency=package.billing_frequency,
        billing_anchor=package.billing_anchor,
        net_payment_terms_days=package.net_payment_terms_days,
        credits=credits,
        recurring_credits=recurring,
        commits=commits,
        subscriptions=subscriptions,
    )
    validate_contract(contract)
    return contract
