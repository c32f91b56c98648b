"""Billing periods, grace deadlines and proration fractions.

Every datetime is timezone-aware UTC; periods are half-open ``[starting_at, ending_before)``.
A schedule's period boundaries are ``anchor_at + k * months_per_period`` months for every
integer ``k``, with the day clamped to the month's last day (a Jan 31 anchor gives Feb 28
or 29, then Mar 31 again: boundaries are always computed from the anchor, never chained).
The first period starts at the schedule's ``starting_at`` and the last is cut at its
``ending_before``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from billing.errors import ValidationError

MICROSECOND = timedelta(microseconds=1)


class BillingFrequency(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"


class BillingAnchor(StrEnum):
    FIRST_OF_MONTH = "first_of_month"
    CONTRACT_START = "contract_start"


MONTHS_PER_PERIOD: dict[BillingFrequency, int] = {
    BillingFrequency.MONTHLY: 1,
    BillingFrequency.QUARTERLY: 3,
    BillingFrequency.ANNUAL: 12,
}


@dataclass(frozen=True)
class Period:
    """A half-open UTC interval ``[starting_at, ending_before)``."""

    starting_at: datetime
    ending_before: datetime

    def contains(self, moment: datetime) -> bool:
        """True when ``starting_at <= moment < ending_before``."""
        return self.starting_at <= moment < self.ending_before

    def overlaps(self, starting_at: datetime, ending_before: datetime | None) -> bool:
        """True when ``[starting_at, ending_before)`` (None: open-ended) meets this period."""
        return starting_at < self.ending_before and (
            ending_before is None or ending_before > self.starting_at
        )


@dataclass(frozen=True)
class BillingSchedule:
    """Where periods fall: boundaries every ``frequency`` from ``anchor_at``, cut to
    ``[starting_at, ending_before)`` (``ending_before`` None: open-ended)."""

    starting_at: datetime
    ending_before: datetime | None
    frequency: BillingFrequency
    anchor_at: datetime


def require_utc(field: str, moment: datetime) -> datetime:
    """Return ``moment`` if it is timezone-aware with a zero UTC offset, else raise
    ``ValidationError(field, ...)``."""
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValidationError(field, "must be a timezone-aware UTC datetime")
    return moment


def add_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by ``months`` calendar months (may be negative), keeping its time
    of day and clamping the day to the target month's length (Jan 31 + 1 → Feb 28/29)."""
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def schedule_for(
    starting_at: datetime,
    ending_before: datetime | None,
    frequency: BillingFrequency,
    anchor: BillingAnchor,
    anchor_from: datetime | None = None,
) -> BillingSchedule:
    """The schedule of a contract (or recurring credit) running over
    ``[starting_at, ending_before)``.

    ``anchor_from`` is the moment the anchor derives from (default ``starting_at``; a
    recurring credit passes its contract's start). ``first_of_month`` puts boundaries at
    00:00 UTC on the first day of ``anchor_from``'s month and every period after it;
    ``contract_start`` puts them at ``anchor_from`` itself and every period after it.
    """
    require_utc("starting_at", starting_at)
    if ending_before is not None and require_utc("ending_before", ending_before) <= starting_at:
        raise ValidationError("ending_before", "must be after starting_at")
    base = starting_at if anchor_from is None else anchor_from
    if anchor is BillingAnchor.FIRST_OF_MONTH:
        base = base.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return BillingSchedule(starting_at, ending_before, frequency, base)


def _boundary(schedule: BillingSchedule, k: int) -> datetime:
    return add_months(schedule.anchor_at, k * MONTHS_PER_PERIOD[schedule.frequency])


def _index_at(schedule: BillingSchedule, moment: datetime) -> int:
    """The k with ``boundary(k) <= moment < boundary(k + 1)``."""
    step = MONTHS_PER_PERIOD[schedule.frequency]
    anchor = schedule.anchor_at
    months = (moment.year - anchor.year) * 12 + moment.month - anchor.month
    k = months // step
    while _boundary(schedule, k) > moment:
        k -= 1
    while _boundary(schedule, k + 1) <= moment:
        k += 1
    return k


def _cut(schedule: BillingSchedule, k: int) -> Period:
    start = max(_boundary(schedule, k), schedule.starting_at)
    end = _boundary(schedule, k + 1)
    if schedule.ending_before is not None:
        end = min(end, schedule.ending_before)
    return Period(start, end)


def period_at(schedule: BillingSchedule, moment: datetime) -> Period | None:
    """The period of ``schedule`` containing ``moment``, or None outside the schedule."""
    if moment < schedule.starting_at or (
        schedule.ending_before is not None and moment >= schedule.ending_before
    ):
        return None
    return _cut(schedule, _index_at(schedule, moment))


def full_period_at(schedule: BillingSchedule, moment: datetime) -> Period:
    """The period containing ``moment`` as it would be without the schedule's start and
    end cuts (the denominator when prorating a cut period)."""
    k = _index_at(schedule, moment)
    return Period(_boundary(schedule, k), _boundary(schedule, k + 1))


def periods(schedule: BillingSchedule, until: datetime) -> Iterator[Period]:
    """Every period of ``schedule`` starting before ``until``, in order."""
    if until <= schedule.starting_at:
        return
    k = _index_at(schedule, schedule.starting_at)
    while True:
        period = _cut(schedule, k)
        if period.starting_at >= until:
            return
        yield period
        if schedule.ending_before is not None and period.ending_before >= schedule.ending_before:
            return
        k += 1


def grace_deadline(period: Period, grace: timedelta) -> datetime:
    """When ``period``'s invoice finalizes: ``ending_before + grace``."""
    return period.ending_before + grace


def counts_toward(
    period: Period, timestamp: datetime, received_at: datetime, grace: timedelta
) -> bool:
    """True when an event stamped ``timestamp`` and received at ``received_at`` counts on
    ``period``'s invoice: its timestamp is in the period and it arrived before the grace
    deadline. An event with a timestamp in the period arriving later is a late event."""
    return period.contains(timestamp) and received_at < grace_deadline(period, grace)


def proration_fraction(period: Period, at: datetime, until: datetime | None = None) -> Decimal:
    """Share of ``period`` between ``at`` and ``until`` (default ``period.ending_before``):
    seconds remaining / seconds in the period, counted exactly in microseconds and clamped
    to [0, 1]. Not rounded here: callers multiply it into an amount and round that once."""
    end = period.ending_before if until is None else min(until, period.ending_before)
    begin = min(max(at, period.starting_at), end)
    return Decimal((end - begin) // MICROSECOND) / Decimal(
        (period.ending_before - period.starting_at) // MICROSECOND
    )
