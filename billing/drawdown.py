"""Credits and commits: balance segments, their ledgers, and the drawdown of charges.

A *segment* is one balance with a lifetime ``[starting_at, ending_before)``: a credit, one
period of a recurring credit, or a commit. Its remaining balance is its ``amount`` plus
every ledger entry other than ``segment_start`` (that entry always equals ``amount`` and is
recorded for history; counting the amount from the segment makes a balance usable from its
start even before the entry is written). Balances never go below 0.

Order of drawdown (SPEC §6): lowest ``priority`` first (unset last); credits before
prepaid commits; earliest ``ending_before``; earliest ``starting_at``; then id. Postpaid
commits do not reduce invoices: they record the applicable spend left after credits and
prepaid commits, and what remains of them at their end is charged as a true-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from billing.contracts import Commit, CommitType, Contract
from billing.errors import ValidationError
from billing.money import ZERO, exact, minor_unit
from billing.periods import Period, periods, schedule_for


class BalanceKind(StrEnum):
    CREDIT = "credit"
    PREPAID_COMMIT = "prepaid_commit"
    POSTPAID_COMMIT = "postpaid_commit"


class LedgerEntryType(StrEnum):
    SEGMENT_START = "segment_start"
    AUTOMATED_INVOICE_DEDUCTION = "automated_invoice_deduction"
    EXPIRATION = "expiration"
    MANUAL_ADJUSTMENT = "manual_adjustment"
    VOID_RESTORE = "void_restore"


@dataclass(frozen=True)
class BalanceSegment:
    """One balance. ``source_id`` is the credit, recurring credit or commit it comes from;
    ``product_id`` is the commit's fixed product (None for credits)."""

    id: str
    source_id: str
    name: str
    kind: BalanceKind
    amount: Decimal
    starting_at: datetime
    ending_before: datetime
    priority: int | None = None
    applicable_product_ids: frozenset[str] | None = None
    product_id: str | None = None

    def applies_to(self, product_id: str) -> bool:
        """True when the segment may pay for ``product_id`` (None: every product)."""
        return self.applicable_product_ids is None or product_id in self.applicable_product_ids

    def live_at(self, moment: datetime) -> bool:
        """True when ``starting_at <= moment < ending_before``."""
        return self.starting_at <= moment < self.ending_before


@dataclass(frozen=True)
class LedgerEntry:
    """A signed change of a segment's balance (deductions and expirations are negative)."""

    segment_id: str
    type: LedgerEntryType
    amount: Decimal
    timestamp: datetime
    invoice_id: str | None = None


@dataclass(frozen=True)
class Deduction:
    """What an invoice draws from one segment (positive)."""

    segment_id: str
    kind: BalanceKind
    amount: Decimal


def _commit_segment(commit: Commit) -> BalanceSegment:
    kind = (
        BalanceKind.PREPAID_COMMIT
        if commit.type is CommitType.PREPAID
        else BalanceKind.POSTPAID_COMMIT
    )
    return BalanceSegment(
        commit.id,
        commit.id,
        commit.name,
        kind,
        commit.amount,
        commit.starting_at,
        commit.ending_before,
        commit.priority,
        commit.applicable_product_ids,
        commit.product_id,
    )


def contract_segments(contract: Contract, until: datetime) -> tuple[BalanceSegment, ...]:
    """Every segment of ``contract`` starting before ``until``: its credits and commits,
    and one segment per period of each recurring credit (full ``amount`` even in a partial
    first period; periods follow the credit's frequency on the contract's anchor, cut at
    the credit's and the contract's ends). A recurring segment's id is
    ``"<recurring credit id>@<period start, ISO 8601>"``."""
    found: list[BalanceSegment] = [
        BalanceSegment(
            credit.id,
            credit.id,
            credit.name,
            BalanceKind.CREDIT,
            credit.amount,
            credit.starting_at,
            credit.ending_before,
            credit.priority,
            credit.applicable_product_ids,
        )
        for credit in contract.credits
    ]
    for recurring in contract.recurring_credits:
        ends = [e for e in (recurring.ending_before, contract.ending_before) if e is not None]
        schedule = schedule_for(
            recurring.starting_at,
            min(ends) if ends else None,
            recurring.frequency,
            contract.billing_anchor,
            anchor_from=contract.starting_at,
        )
        found.extend(
            BalanceSegment(
                f"{recurring.id}@{period.starting_at.isoformat()}",
                recurring.id,
                recurring.name,
                BalanceKind.CREDIT,
                recurring.amount,
                period.starting_at,
                period.ending_before,
                recurring.priority,
                recurring.applicable_product_ids,
            )
            for period in periods(schedule, until)
        )
    found.extend(_commit_segment(commit) for commit in contract.commits)
    return tuple(segment for segment in found if segment.starting_at < until)


def drawdown_order(segment: BalanceSegment) -> tuple[bool, int, int, datetime, datetime, str]:
    """Sort key of SPEC §6: priority (unset last), credits before commits, earliest
    ``ending_before``, earliest ``starting_at``, id."""
    return (
        segment.priority is None,
        segment.priority or 0,
        0 if segment.kind is BalanceKind.CREDIT else 1,
        segment.ending_before,
        segment.starting_at,
        segment.id,
    )


def segment_start_entry(segment: BalanceSegment) -> LedgerEntry:
    """The ``segment_start`` entry of ``segment``: ``+amount`` at ``starting_at``."""
    return LedgerEntry(
        segment.id, LedgerEntryType.SEGMENT_START, segment.amount, segment.starting_at
    )


def ledger_balance(segment: BalanceSegment, entries: Iterable[LedgerEntry]) -> Decimal:
    """``amount`` plus every entry of ``segment`` other than ``segment_start``."""
    return segment.amount + sum(
        (
            entry.amount
            for entry in entries
            if entry.segment_id == segment.id and entry.type is not LedgerEntryType.SEGMENT_START
        ),
        ZERO,
    )


@exact
def available_balances(
    segments: Iterable[BalanceSegment],
    ledgers: Mapping[str, Sequence[LedgerEntry]],
    pending: Iterable[Deduction] = (),
) -> dict[str, Decimal]:
    """Per segment id: its ledger balance minus what ``pending`` (open drafts) would draw."""
    return {
        view.segment.id: view.remaining_after_drafts
        for view in balance_views(segments, ledgers, pending)
    }


@dataclass(frozen=True)
class Charge:
    """A line that may draw balances: its product and (rounded) amount."""

    product_id: str
    amount: Decimal


def draw_down(
    charges: Sequence[Charge],
    segments: Iterable[BalanceSegment],
    available: Mapping[str, Decimal],
    period: Period,
    currency: str,
) -> tuple[Deduction, ...]:
    """Draw ``charges`` (in order) from the segments usable in ``period``.

    A segment is usable if it overlaps ``period``; it pays only for applicable products.
    Credits and prepaid commits are drawn in :func:`drawdown_order`; postpaid commits then
    record what is left. Each segment draws at most its available amount floored to the
    minor unit, so no balance goes below 0 and no charge is drawn beyond its amount.
    Returns one :class:`Deduction` per segment that drew something, in drawdown order.
    """
    quantum = minor_unit(currency)
    left = [max(charge.amount, ZERO) for charge in charges]
    usable = sorted(
        (s for s in segments if period.overlaps(s.starting_at, s.ending_before)),
        key=lambda s: (s.kind is BalanceKind.POSTPAID_COMMIT, drawdown_order(s)),
    )
    deductions: list[Deduction] = []
    for segment in usable:
        budget = max(available.get(segment.id, segment.amount), ZERO)
        budget = budget.quantize(quantum, rounding=ROUND_FLOOR)
        drawn = ZERO
        for index, charge in enumerate(charges):
            if budget - drawn <= 0:
                break
            if segment.applies_to(charge.product_id):
                take = min(left[index], budget - drawn)
                left[index] -= take
                drawn += take
        if drawn > 0:
            deductions.append(Deduction(segment.id, segment.kind, drawn))
    return tuple(deductions)


def deduction_entries(
    deductions: Iterable[Deduction], invoice_id: str, at: datetime
) -> tuple[LedgerEntry, ...]:
    """One ``automated_invoice_deduction`` entry (negative) per segment of a finalized
    invoice."""
    return tuple(
        LedgerEntry(
            d.segment_id, LedgerEntryType.AUTOMATED_INVOICE_DEDUCTION, -d.amount, at, invoice_id
        )
        for d in deductions
    )


def void_entries(
    entries: Iterable[LedgerEntry], invoice_id: str, at: datetime
) -> tuple[LedgerEntry, ...]:
    """``void_restore`` entries giving back every deduction ``invoice_id`` made."""
    return tuple(
        LedgerEntry(e.segment_id, LedgerEntryType.VOID_RESTORE, -e.amount, at, invoice_id)
        for e in entries
        if e.invoice_id == invoice_id and e.type is LedgerEntryType.AUTOMATED_INVOICE_DEDUCTION
    )


def expiration_entry(
    segment: BalanceSegment, entries: Iterable[LedgerEntry], at: datetime
) -> LedgerEntry | None:
    """The ``expiration`` entry zeroing what is left of ``segment`` (None if nothing is).

    Call it once every invoice overlapping the segment is finalized (so the last period's
    draft, finalized after the grace period, still draws from it)."""
    remaining = ledger_balance(segment, entries)
    if remaining <= 0:
        return None
    return LedgerEntry(segment.id, LedgerEntryType.EXPIRATION, -remaining, at)


def manual_adjustment(
    segment: BalanceSegment, entries: Iterable[LedgerEntry], amount: Decimal, at: datetime
) -> LedgerEntry:
    """A ``manual_adjustment`` of ``amount`` (signed); raises ``ValidationError("amount")``
    if it would take the balance below 0."""
    if ledger_balance(segment, entries) + amount < 0:
        raise ValidationError("amount", "would take the balance below 0")
    return LedgerEntry(segment.id, LedgerEntryType.MANUAL_ADJUSTMENT, amount, at)


@dataclass(frozen=True)
class BalanceView:
    """A segment's ledger balance and what open drafts would draw from it."""

    segment: BalanceSegment
    ledger_balance: Decimal
    pending_draft_deduction: Decimal

    @property
    def remaining_after_drafts(self) -> Decimal:
        """``ledger_balance - pending_draft_deduction`` (never below 0)."""
        return self.ledger_balance - self.pending_draft_deduction


def balance_views(
    segments: Iterable[BalanceSegment],
    ledgers: Mapping[str, Sequence[LedgerEntry]],
    pending: Iterable[Deduction],
) -> tuple[BalanceView, ...]:
    """One :class:`BalanceView` per segment, ``pending`` being the open drafts' deductions."""
    drawn: dict[str, Decimal] = {}
    for deduction in pending:
        drawn[deduction.segment_id] = drawn.get(deduction.segment_id, ZERO) + deduction.amount
    return tuple(
        BalanceView(s, ledger_balance(s, ledgers.get(s.id, ())), drawn.get(s.id, ZERO))
        for s in segments
    )
