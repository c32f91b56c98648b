"""Exact decimal arithmetic inside SQLite, which has no exact numeric type.

Every SQLite connection is opened with :class:`DecimalConnection`, which registers
``dec_add``/``dec_max`` (scalar) and ``dec_sum``/``dec_max_agg`` (aggregate) working on the
canonical decimal text that ``models.types.ExactDecimal`` stores.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from billing.money import EXACT


def _dec_add(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return b if a is None else a
    return str(EXACT.add(Decimal(a), Decimal(b)))


def _dec_max(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return b if a is None else a
    return a if Decimal(a) >= Decimal(b) else b


class _DecSum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None:
            value_ = Decimal(value)
            self.total = value_ if self.total is None else EXACT.add(self.total, value_)

    def finalize(self) -> str | None:
        return None if self.total is None else str(self.total)


class _DecMaxAgg:
    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: str | None) -> None:
        if value is not None and (self.best is None or Decimal(value) > self.best):
            self.best = Decimal(value)

    def finalize(self) -> str | None:
        return None if self.best is None else str(self.best)


class DecimalConnection(sqlite3.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_function("dec_add", 2, _dec_add, deterministic=True)
        self.create_function("dec_max", 2, _dec_max, deterministic=True)
        self.create_aggregate("dec_sum", 1, _DecSum)  # type: ignore[arg-type]
        self.create_aggregate("dec_max_agg", 1, _DecMaxAgg)  # type: ignore[arg-type]
