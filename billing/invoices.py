"""The invoice as a value: lines, unrated usage, totals (SPEC §6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.drawdown import Deduction
from billing.metering import GroupValues
from billing.money import ZERO
from billing.pricing import TierAmount
from billing.rates import UnratedReason


class LineType(StrEnum):
    """Line types, in the order lines appear on an invoice."""

    USAGE = "usage"
    SUBSCRIPTION = "subscription"
    SCHEDULED = "scheduled"
    COMMIT_PURCHASE = "commit_purchase"
    COMMIT_TRUEUP = "commit_trueup"
    COMPOSITE = "composite"
    CREDIT_APPLIED = "credit_applied"
    COMMIT_APPLIED = "commit_applied"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    VOID = "void"


@dataclass(frozen=True)
class InvoiceLine:
    """One line. ``amount`` is rounded to the currency's minor unit; ``unit_price`` is set
    where one price applies; ``tiers`` breaks down tiered lines; ``balance_id`` names the
    segment of credit/commit lines and true-ups."""

    type: LineType
    product_id: str | None
    name: str
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    group: GroupValues = ()
    tiers: tuple[TierAmount, ...] = ()
    balance_id: str | None = None


@dataclass(frozen=True)
class UnratedUsage:
    """Usage (or a subscription) that was not charged, with its billed quantity and why."""

    product_id: str
    group: GroupValues
    quantity: Decimal
    reason: UnratedReason


@dataclass(frozen=True)
class Invoice:
    """An invoice of one contract for ``[starting_at, ending_before)``.

    Invariants: ``subtotal`` = sum of positive line amounts; ``total`` = max(0, sum of all
    line amounts); ``deductions`` are what the invoice draws per balance segment (postpaid
    commits included), recorded in the ledger at finalization."""

    contract_id: str
    customer_id: str
    currency: str
    starting_at: datetime
    ending_before: datetime
    status: InvoiceStatus
    lines: tuple[InvoiceLine, ...]
    unrated_usage: tuple[UnratedUsage, ...]
    subtotal: Decimal
    total: Decimal
    deductions: tuple[Deduction, ...] = ()


def totals(lines: Sequence[InvoiceLine], zero: Decimal = ZERO) -> tuple[Decimal, Decimal]:
    """``(subtotal, total)``: the sum of positive amounts, and the sum of all amounts
    floored at 0. ``zero`` sets the exponent of empty sums (e.g. ``0.00``)."""
    subtotal = sum((line.amount for line in lines if line.amount > 0), zero)
    total = sum((line.amount for line in lines), zero)
    return subtotal, max(total, zero)
