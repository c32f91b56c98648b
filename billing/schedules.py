"""Lifecycle occurrences of a contract and offset notifications (SPEC §8).

An occurrence is a time-based system event (``contract.started``, ``credit.segment_ended``
...) of one object at one instant. An offset rule fires ``<trigger>.offset`` at occurrence
time + a signed ISO-8601 duration. Each (rule, object, occurrence instant) is one delivery:
:attr:`OffsetOccurrence.key` is the idempotency key. Pure: the caller passes the times.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from billing.contracts import Contract
from billing.drawdown import BalanceKind, contract_segments
from billing.errors import ValidationError
from billing.periods import add_months


class LifecycleEvent(StrEnum):
    CONTRACT_STARTED = "contract.started"
    CONTRACT_ENDED = "contract.ended"
    CREDIT_SEGMENT_STARTED = "credit.segment_started"
    CREDIT_SEGMENT_ENDED = "credit.segment_ended"
    COMMIT_SEGMENT_STARTED = "commit.segment_started"
    COMMIT_SEGMENT_ENDED = "commit.segment_ended"


@dataclass(frozen=True)
class Occurrence:
    """``type`` happens to ``object_id`` (a contract or balance segment id) at ``at``."""

    type: LifecycleEvent
    contract_id: str
    object_id: str
    at: datetime


def lifecycle_occurrences(contract: Contract, until: datetime) -> tuple[Occurrence, ...]:
    """The contract's start and end (if it has one) and the start and end of every balance
    segment starting before ``until`` (recurring credits add one segment per period), even
    when they fall after ``until`` (so negative offsets can be scheduled ahead). Sorted by
    time, then type, then object id."""
    found = [
        Occurrence(LifecycleEvent.CONTRACT_STARTED, contract.id, contract.id, contract.starting_at)
    ]
    if contract.ending_before is not None:
        found.append(
            Occurrence(
                LifecycleEvent.CONTRACT_ENDED, contract.id, contract.id, contract.ending_before
            )
        )
    for segment in contract_segments(contract, until):
        credit = segment.kind is BalanceKind.CREDIT
        started = (
            LifecycleEvent.CREDIT_SEGMENT_STARTED
            if credit
            else LifecycleEvent.COMMIT_SEGMENT_STARTED
        )
        ended = (
            LifecycleEvent.CREDIT_SEGMENT_ENDED if credit else LifecycleEvent.COMMIT_SEGMENT_ENDED
        )
        found.append(Occurrence(started, contract.id, segment.id, segment.starting_at))
        found.append(Occurrence(ended, contract.id, segment.id, segment.ending_before))
    return tuple(sorted(found, key=lambda o: (o.at, o.type.value, o.object_id)))


_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d{1,6})?)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """A signed ISO-8601 duration: calendar ``months`` (years count 12) and an exact
    ``delta`` (weeks, days, hours, minutes, seconds), both applied with ``negative``'s sign."""

    text: str
    negative: bool
    months: int
    delta: timedelta

    def applied_to(self, moment: datetime) -> datetime:
        """``moment`` shifted by the duration: months first (day clamped to the month's
        end, see :func:`billing.periods.add_months`), then the exact part."""
        sign = -1 if self.negative else 1
        return add_months(moment, sign * self.months) + sign * self.delta


def parse_duration(text: str, field: str = "offset") -> Duration:
    """Parse ``"-P7D"``, ``"PT2H"``, ``"+P1M2DT3H4M5.5S"``, ``"P2W"``. Raises
    ``ValidationError(field, ...)`` for anything else (including an empty ``"P"``)."""
    found = _DURATION.match(text)
    if found is None or not any(
        found.group(name)
        for name in ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
    ):
        raise ValidationError(
            field, f"{text!r} is not a signed ISO-8601 duration like -P7D or PT2H"
        )

    def part(name: str) -> int:
        return int(found.group(name) or 0)

    seconds = Decimal(found.group("seconds") or 0)
    delta = timedelta(
        weeks=part("weeks"),
        days=part("days"),
        hours=part("hours"),
        minutes=part("minutes"),
        microseconds=int(seconds * 1_000_000),
    )
    return Duration(text, found.group("sign") == "-", part("years") * 12 + part("months"), delta)


@dataclass(frozen=True)
class OffsetRule:
    """Fire ``<trigger>.offset`` at occurrence time + ``offset``. Rules never back-fill:
    instants before ``created_at`` are skipped."""

    id: str
    name: str
    trigger: LifecycleEvent
    offset: Duration
    created_at: datetime


@dataclass(frozen=True)
class OffsetOccurrence:
    rule_id: str
    occurrence: Occurrence
    at: datetime
    offset: str

    @property
    def type(self) -> str:
        """The webhook type: ``"<trigger>.offset"``."""
        return f"{self.occurrence.type.value}.offset"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(rule, trigger, object, occurrence instant): one delivery per key."""
        o = self.occurrence
        return (self.rule_id, o.type.value, o.object_id, o.at.isoformat())


def offset_occurrences(
    rule: OffsetRule, occurrences: Iterable[Occurrence]
) -> tuple[OffsetOccurrence, ...]:
    """The offset notifications ``rule`` schedules for ``occurrences`` of its trigger,
    skipping those due before the rule was created, sorted by due time."""
    due = (
        OffsetOccurrence(rule.id, o, rule.offset.applied_to(o.at), rule.offset.text)
        for o in occurrences
        if o.type is rule.trigger
    )
    return tuple(sorted((d for d in due if d.at >= rule.created_at), key=lambda d: (d.at, d.key)))


def due_between(
    items: Sequence[OffsetOccurrence] | Sequence[Occurrence], after: datetime, until: datetime
) -> list[OffsetOccurrence | Occurrence]:
    """The items due in ``[after, until)``: what a scheduler run covering that window fires
    (consecutive runs with adjoining windows fire each item exactly once)."""
    return [item for item in items if after <= item.at < until]
