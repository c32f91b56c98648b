"""Files of usage events for ``meterline import``: JSON Lines or CSV, read into the dicts
``POST /v1/ingest`` judges (one per event, numbers as exact ``Decimal``), with line numbers.

A line that cannot be read as an event (not UTF-8, not JSON, not an object, a CSV row of the
wrong width) becomes a :class:`Rejection` with the code ``invalid_line``; nothing raises
past the header of a CSV file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from billing.events import INVALID_PROPERTIES, Rejection
from resolvers.ingest import decode_json

INVALID_LINE = "invalid_line"
FIELDS = ("transaction_id", "customer_id", "event_type", "timestamp")
PROPERTY_PREFIX = "properties."
CSV_FIELD_LIMIT = 16 * 1024 * 1024

Record = tuple[int, dict[str, Any] | Rejection]
"""(line number from 1, the event as decoded or why the line is not one)."""

_UNDECODABLE = re.compile("[\udc80-\udcff]")


class FileFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class EventFileError(Exception):
    """The file as a whole cannot be imported (its format is unknown, its header is wrong)."""


def format_of(path: Path, forced: FileFormat | None) -> FileFormat:
    """``forced``, else the format the file's extension names."""
    if forced is not None:
        return forced
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return FileFormat.jsonl
    if suffix == ".csv":
        return FileFormat.csv
    raise EventFileError(f"cannot tell the format of {path.name}: pass --format jsonl or csv")


def jsonl_records(lines: Iterable[bytes]) -> Iterator[Record]:
    """One event per non-blank line: a JSON object, decoded as ``POST /v1/ingest`` does."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            yield number, Rejection(INVALID_LINE, f"the line is not valid UTF-8: {error.reason}")
            continue
        try:
            data = decode_json(text)
        except (ValueError, RecursionError) as error:
            yield number, Rejection(INVALID_LINE, f"the line is not valid JSON: {error}")
            continue
        if not isinstance(data, dict):
            yield number, Rejection(INVALID_LINE, "each line must be one JSON object (an event)")
            continue
        yield number, data


def _check_header(header: list[str]) -> None:
    missing = [name for name in FIELDS if name not in header]
    unknown = [
        name
        for name in header
        if name not in FIELDS
        and name != "properties"
        and not (name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX))
    ]
    repeated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise EventFileError(
            "the CSV header has "
            + "; ".join(problems)
            + f": expected {', '.join(FIELDS)}, and properties (a JSON object) "
            "or properties.<name> columns"
        )


def _csv_event(header: list[str], row: list[str]) -> dict[str, Any] | Rejection:
    if len(row) != len(header):
        return Rejection(INVALID_LINE, f"the row has {len(row)} fields, the header {len(header)}")
    if any(_UNDECODABLE.search(cell) for cell in row):
        return Rejection(INVALID_LINE, "the row is not valid UTF-8")
    cells = dict(zip(header, row, strict=True))
    event: dict[str, Any] = {name: cells[name] for name in FIELDS}
    properties: Any = None
    if cells.get("properties", "").strip():
        try:
            properties = decode_json(cells["properties"])
        except (ValueError, RecursionError) as error:
            return Rejection(INVALID_PROPERTIES, f"properties is not valid JSON: {error}")
    named = {
        name[len(PROPERTY_PREFIX) :]: value
        for name, value in cells.items()
        if name.startswith(PROPERTY_PREFIX) and value != ""
    }
    if named:
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            return Rejection(INVALID_PROPERTIES, "properties must be an object")
        for name, value in named.items():
            if name in properties:
                return Rejection(
                    INVALID_PROPERTIES, f"property {name!r} is given twice (JSON and column)"
                )
            properties[name] = value
    if properties is not None:
        event["properties"] = properties
    return event


def csv_records(stream: TextIO) -> Iterator[Record]:
    """One event per CSV row after the header (see :func:`_check_header`); ``properties.x``
    cells are kept as text (exact), empty ones are left out. ``stream`` is read with
    ``newline=""`` and ``errors="surrogateescape"`` so undecodable rows are reported."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise EventFileError(f"the CSV header cannot be read: {error}") from None
    if header is None:
        return
    _check_header(header)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, Rejection(INVALID_LINE, f"the row is not valid CSV: {error}")
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, _csv_event(header, row)
