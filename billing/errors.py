"""The one typed error tree of the billing core.

Every error raised on purpose by ``billing`` is a :class:`BillingError`.  Its ``code``
is an :data:`ErrorCode`; the API layer maps it onto GraphQL ``extensions.code``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "NOT_FOUND",
    "VALIDATION",
    "CONFLICT",
    "FORBIDDEN",
    "UNAUTHENTICATED",
    "RATE_LIMITED",
]


class BillingError(Exception):
    """Base of every deliberate billing error; ``code`` says which kind it is and
    ``field``, when known, names the offending input field (dotted path allowed)."""

    code: ClassVar[ErrorCode] = "VALIDATION"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


class ValidationError(BillingError):
    """An input is invalid; ``field`` names the offending field (dotted path allowed)."""

    code: ClassVar[ErrorCode] = "VALIDATION"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class NotFoundError(BillingError):
    """A referenced object (product, rate card, credit ...) does not exist."""

    code: ClassVar[ErrorCode] = "NOT_FOUND"


class ConflictError(BillingError):
    """The request conflicts with current state (e.g. editing a finalized invoice)."""

    code: ClassVar[ErrorCode] = "CONFLICT"


class ForbiddenError(BillingError):
    """The caller may not perform this operation."""

    code: ClassVar[ErrorCode] = "FORBIDDEN"


class UnauthenticatedError(BillingError):
    """The caller is not authenticated."""

    code: ClassVar[ErrorCode] = "UNAUTHENTICATED"


class RateLimitedError(BillingError):
    """The caller exceeded a rate limit."""

    code: ClassVar[ErrorCode] = "RATE_LIMITED"
