"""Keyset pages over (created_at, id): stable under inserts, opaque cursors."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.errors import ValidationError

MAX_PAGE = 100


@dataclass(frozen=True)
class Page:
    """Rows of one page with each row's cursor; ``has_next`` if more rows follow."""

    rows: list[tuple[str, Any]]
    has_next: bool


def check_first(first: int) -> None:
    if not 1 <= first <= MAX_PAGE:
        raise ValidationError("first", f"must be between 1 and {MAX_PAGE}")


def cursor_of(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = raw.split("|", 1)
        return datetime.fromisoformat(moment), row_id
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("after", "is not a cursor this list returned") from None


async def page(
    conn: AsyncConnection,
    query: Select[Any],
    created_at: Any,
    row_id: Any,
    first: int,
    after: str | None,
    *,
    newest_first: bool = False,
) -> Page:
    """``first`` rows (1–100) of ``query`` after the ``after`` cursor, ordered by
    (``created_at``, ``row_id``) ascending, or descending with ``newest_first``."""
    check_first(first)
    if after is not None:
        moment, last_id = _decode(after)
        if newest_first:
            query = query.where(
                or_(created_at < moment, and_(created_at == moment, row_id < last_id))
            )
        else:
            query = query.where(
                or_(created_at > moment, and_(created_at == moment, row_id > last_id))
            )
    order = (created_at.desc(), row_id.desc()) if newest_first else (created_at, row_id)
    rows = list(await conn.execute(query.order_by(*order).limit(first + 1)))
    has_next = len(rows) > first
    rows = rows[:first]
    keyed = [
        (cursor_of(row._mapping[created_at.key], row._mapping[row_id.key]), row) for row in rows
    ]
    return Page(keyed, has_next)
