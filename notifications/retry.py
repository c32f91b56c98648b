"""Retry policy of webhook delivery (SPEC §10): pure, no I/O, no clock.

Time is always a parameter; randomness (the jitter) is drawn by the caller, so every
function here is deterministic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

DEFAULT_SCHEDULE: Final[tuple[timedelta, ...]] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""Delay after the 1st, 2nd … 7th failed attempt: 8 attempts in all."""

JITTER: Final[float] = 0.2
"""Largest jitter fraction; the caller draws ``random.uniform(-JITTER, JITTER)``."""

DISABLE_AFTER: Final[timedelta] = timedelta(days=5)
"""An endpoint failing every attempt for this long is disabled."""

_DELTA_SECONDS = re.compile(r"[0-9]+")


def next_delay(
    failed_attempts: int,
    schedule: Sequence[timedelta],
    jitter: float,
    retry_after: timedelta | None = None,
) -> timedelta | None:
    """Delay before the next attempt of a message, or ``None`` when no retry is left.

    ``failed_attempts`` counts the attempts made so far, all failed (>= 1); the delay
    after the n-th failure is ``schedule[n - 1]`` ("scheduled"), so a schedule of k
    delays allows k + 1 attempts in all and ``failed_attempts > len(schedule)`` gives
    ``None``. ``jitter`` is a fraction in ``[-JITTER, JITTER]`` drawn by the caller.

    Without ``retry_after`` the delay is ``scheduled × (1 + jitter)``. With it (a 429/503
    ``Retry-After``), the delay is ``retry_after`` kept within this step's bounds
    ``scheduled × (1 ± JITTER)``: the server picks the moment inside the step's window,
    and a ``Retry-After: 0`` on every answer cannot burn the attempts in seconds.

    Invariants: the result is always within ``scheduled × (1 ± JITTER)``. Durations are
    ``timedelta`` (microsecond resolution, float products rounded half-even by ``timedelta``).

    Raises ``ValueError`` for ``failed_attempts < 1`` or a jitter outside the bound.
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be >= 1, got {failed_attempts}")
    if math.isnan(jitter) or abs(jitter) > JITTER:
        raise ValueError(f"jitter must be within [-{JITTER}, {JITTER}], got {jitter}")
    if failed_attempts > len(schedule):
        return None
    scheduled = max(schedule[failed_attempts - 1], timedelta(0))
    upper = scheduled * (1 + JITTER)
    lower = scheduled * (1 - JITTER)
    wanted = scheduled * (1 + jitter) if retry_after is None else retry_after
    return min(max(wanted, lower), upper)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """The wait a ``Retry-After`` header asks for, relative to ``now``.

    Accepts delta-seconds (``"120"``: ASCII digits only) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a date without zone is read as UTC). Returns
    ``None`` for a missing, empty or unparsable value; a date in the past gives
    ``timedelta(0)``, so the result is never negative. A delta too large for
    ``timedelta`` gives ``timedelta.max`` (``next_delay`` caps it anyway).

    ``now`` must be timezone-aware (``ValueError`` otherwise).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        try:
            return timedelta(seconds=int(text))
        except OverflowError:
            return timedelta.max
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def should_disable(
    failing_since: datetime | None,
    now: datetime,
    after: timedelta = DISABLE_AFTER,
) -> bool:
    """Whether an endpoint must be disabled for failing too long.

    ``failing_since`` is the time of the first failed attempt of the current unbroken run
    of failures (``None`` when the last attempt succeeded or none was made). The endpoint
    is disabled once ``now - failing_since >= after`` (default 5 days). Both datetimes
    must be comparable (both aware, as everywhere in Meterline).
    """
    if failing_since is None:
        return False
    return now - failing_since >= after
