"""The injectable clock. Lower layers take ``Callable[[], datetime]``: call it for now."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock tests and scenarios set by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.now = now
