"""``meterline export invoices``: finalized and voided invoices as CSV, one row per invoice
line (or per invoice). Amounts and quantities are exact decimal strings, times ISO-8601 UTC."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from billing.events import parse_rfc3339
from billing.invoices import InvoiceLine
from models.db import Database
from models.store.invoice_export import ExportedInvoice, ExportKey, invoices_to_export
from models.store.organizations import organization_named

PAGE = 200

HEAD = [
    "invoice_id",
    "customer_id",
    "customer_name",
    "contract_id",
    "period_start",
    "period_end",
    "status",
    "currency",
]
LINE = ["line_type", "product_id", "line_name", "group", "quantity", "unit_price", "amount"]
TAIL = ["finalized_at", "voided_at", "replaces_invoice_id"]
LINE_COLUMNS = [*HEAD, *LINE, "invoice_subtotal", "invoice_total", *TAIL]
INVOICE_COLUMNS = [*HEAD, "line_count", "late_events", "subtotal", "total", *TAIL]


class ExportFormat(StrEnum):
    csv = "csv"


def parse_since(text: str) -> datetime | None:
    """A date (midnight UTC) or an RFC 3339 date-time, or None if ``text`` is neither."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return parse_rfc3339(text)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@contextlib.contextmanager
def open_output(output: str) -> Iterator[TextIO]:
    """Standard output for ``-``; else a file that appears at ``output`` only once the
    export is complete (it is written beside it first)."""
    if output == "-":
        yield sys.stdout
        return
    target = Path(output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _decimal(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def _time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat().replace("+00:00", "Z")


def _line_cells(line: InvoiceLine | None) -> list[str]:
    if line is None:
        return [""] * len(LINE)
    return [
        line.type.value,
        line.product_id or "",
        line.name,
        json.dumps(dict(line.group), ensure_ascii=False, separators=(",", ":")),
        _decimal(line.quantity),
        _decimal(line.unit_price),
        _decimal(line.amount),
    ]


def rows_of(found: ExportedInvoice, *, lines: bool) -> Iterator[list[str]]:
    """The CSV rows of one invoice: one per line (an invoice without lines still gets one
    row, its line cells empty), or one for the invoice."""
    invoice = found.invoice
    head = [
        found.id,
        invoice.customer_id,
        found.customer_name,
        invoice.contract_id,
        _time(invoice.starting_at),
        _time(invoice.ending_before),
        invoice.status.value,
        invoice.currency,
    ]
    tail = [_time(found.finalized_at), _time(found.voided_at), found.replaces_invoice_id or ""]
    totals = [_decimal(invoice.subtotal), _decimal(invoice.total)]
    if not lines:
        yield [*head, str(len(invoice.lines)), str(found.late_events), *totals, *tail]
        return
    for line in invoice.lines or (None,):
        yield [*head, *_line_cells(line), *totals, *tail]


async def export_invoices(
    database_url: str, org: str, since: datetime, out: TextIO, *, lines: bool = True
) -> int:
    """Write the invoices of the organization named ``org`` whose period starts at or after
    ``since`` to ``out`` as CSV, a page of invoices at a time; returns how many. An unknown
    organization raises ``billing.errors.NotFoundError`` before anything is written."""
    db = Database(database_url)
    writer = csv.writer(out, lineterminator="\n")
    count = 0
    try:
        async with db.read() as conn:
            org_id = await organization_named(conn, org)
            writer.writerow(LINE_COLUMNS if lines else INVOICE_COLUMNS)
            after: ExportKey | None = None
            while page := await invoices_to_export(conn, org_id, since, after, PAGE):
                for found in page:
                    writer.writerows(rows_of(found, lines=lines))
                count += len(page)
                after = page[-1].key
    finally:
        await db.dispose()
    return count
