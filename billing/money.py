"""Money: currency minor units and the one rounding policy.

Amounts are ``Decimal`` in the currency's major unit (USD dollars, JPY yen). Arithmetic is
exact; the only rounding of money is :func:`round_money`: ROUND_HALF_UP to the currency's
minor unit, applied once per invoice line (and per tier of a graduated line).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import ParamSpec, TypeVar

from billing.errors import ValidationError

ZERO = Decimal(0)

EXACT = Context(prec=100, Emax=999_999, Emin=-999_999)
"""The context of billing arithmetic: 100 significant digits, so sums of usage values
within ``metering.VALUE_LIMIT`` (30 digits on each side of the point), their products with
prices (at most 27 digits) and the rounding of such amounts never round silently nor fail
(Python's default context keeps 28 digits)."""

P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run with :data:`EXACT` as the decimal context (for the core's entry
    points: every ``+``, ``*`` and quantize inside uses it)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(EXACT):
            return function(*args, **kwargs)

    return run


MINOR_UNITS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3,
    "PHP": 2, "PKR": 2, "PLN": 2, "RON": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2,
    "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "UGX": 0, "USD": 2, "VND": 0, "XAF": 0,
    "XOF": 0, "ZAR": 2,
}  # fmt: skip
"""ISO 4217 minor-unit exponents of the supported currencies."""


_QUANTA = {currency: Decimal(1).scaleb(-places) for currency, places in MINOR_UNITS.items()}


def minor_units(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit (USD 2, JPY 0, KWD 3).

    Raises ``ValidationError("currency", ...)`` for a code outside :data:`MINOR_UNITS`.
    """
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValidationError("currency", f"unsupported ISO 4217 currency {currency!r}") from None


def minor_unit(currency: str) -> Decimal:
    """One minor unit of ``currency`` as an exponent to quantize to (USD ``0.01``, JPY ``1``).

    Raises ``ValidationError("currency", ...)`` like :func:`minor_units`.
    """
    found = _QUANTA.get(currency)
    return Decimal(1).scaleb(-minor_units(currency)) if found is None else found


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded ROUND_HALF_UP to ``currency``'s minor unit (0.125 USD → 0.13).

    The result always carries exactly the minor-unit exponent (``Decimal("6.00")``).
    """
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def zero(currency: str) -> Decimal:
    """Zero with ``currency``'s minor-unit exponent (``0.00`` for USD)."""
    return round_money(ZERO, currency)
