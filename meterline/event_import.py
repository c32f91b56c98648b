"""``meterline import``: historical events through the ingest path of ``POST /v1/ingest``.

Each event is judged by ``billing.events.validate_event`` at the time its batch is stored
(so the API's timestamp window applies) and stored by ``models.store.ingest.record_batch``
(dedupe on the transaction id, against the API and earlier imports too); after each
batch commits, the outbox hands its alert evaluations and usage pushes to Redis, as the
API does. Batches are independent transactions: an interrupted import is resumed by running
it again, the events already stored come back as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import RedisError
from rich.console import Console, Group
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from billing.events import Rejection
from billing.metering import UsageEvent
from meterline.event_files import FileFormat, Record, csv_records, jsonl_records
from models.db import Database
from models.store.ingest import BatchOutcome
from models.store.organizations import organization_named
from resolvers.ingest import NO_MATCHING_METRIC, UNKNOWN_CUSTOMER, judge, store_events

BATCH_SIZE = 1000
MAX_BATCH_SIZE = 5000
EXAMPLES = 5
NO_REDIS = (
    "alert evaluations wait in the database for the worker's outbox sweeper; "
    "live usage pushes are skipped"
)


@dataclass
class Occurrences:
    """How many events had one code, and the first few (line number, message)."""

    count: int = 0
    first: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.first) < EXAMPLES:
            self.first.append((line, message))


@dataclass
class Summary:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, Occurrences] = field(default_factory=dict)
    warnings: dict[str, Occurrences] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(found.count for found in self.rejected.values())

    def reject(self, line: int, rejection: Rejection) -> None:
        self.rejected.setdefault(rejection.code, Occurrences()).add(line, rejection.message)

    def warn(self, code: str, line: int, message: str) -> None:
        self.warnings.setdefault(code, Occurrences()).add(line, message)

    def count(self, outcome: BatchOutcome, events: dict[int, UsageEvent]) -> None:
        self.accepted += len(outcome.accepted)
        self.duplicates += len(outcome.duplicates)
        for line in outcome.unknown_customer:
            reference = events[line].customer_id
            self.warn(UNKNOWN_CUSTOMER, line, f"no customer has the id or alias {reference!r}")
        for line in outcome.unmatched:
            self.warn(NO_MATCHING_METRIC, line, "no billable metric matches the event")


def _batches(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


async def import_records(
    db: Database,
    redis: ArqRedis | None,
    org_id: str,
    records: Iterable[Record],
    clock: Callable[[], datetime],
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[Summary], None] = lambda _summary: None,
    notice: Callable[[str], None] = lambda _message: None,
) -> Summary:
    """Judge, store and count ``records`` batch by batch; ``on_batch`` after each one.
    Without ``redis`` (or once it fails) nothing is dispatched: see :data:`NO_REDIS`."""
    summary = Summary()
    for batch in _batches(records, batch_size):
        now = clock()
        summary.read += len(batch)
        valid, rejected = judge(batch, now)
        for line, rejection in rejected:
            summary.reject(line, rejection)
        if valid:
            outcome, outbox = await store_events(db, org_id, valid, now)
            summary.count(outcome, dict(valid))
            if redis is not None:
                try:
                    await outbox.dispatch(redis)
                except RedisError as error:
                    redis = None
                    notice(f"Redis failed ({error}); importing on without it: {NO_REDIS}")
        on_batch(summary)
    return summary


@contextlib.asynccontextmanager
async def _redis(url: str | None, console: Console) -> AsyncIterator[ArqRedis | None]:
    if url is None:
        console.print(f"[yellow]no REDIS_URL: {NO_REDIS}[/yellow]")
        yield None
        return
    try:
        pool = await create_pool(RedisSettings.from_dsn(url))
    except (RedisError, OSError) as error:
        console.print(f"[yellow]Redis is unreachable ({error}): {NO_REDIS}[/yellow]")
        yield None
        return
    try:
        yield pool
    finally:
        await pool.aclose()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("read {task.fields[read]:,} · accepted {task.fields[accepted]:,}"),
        TimeElapsedColumn(),
        console=console,
    )


async def run_import(
    database_url: str,
    redis_url: str | None,
    path: Path,
    file_format: FileFormat,
    org: str,
    clock: Callable[[], datetime],
    console: Console,
    *,
    batch_size: int = BATCH_SIZE,
) -> Summary:
    """Import the file at ``path`` into the organization named ``org``, with a progress
    bar on ``console``. Raises ``billing.errors.NotFoundError`` for an unknown organization
    and ``meterline.event_files.EventFileError`` for a file that cannot be imported."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            org_id = await organization_named(conn, org)
        async with _redis(redis_url, console) as redis:
            progress = _progress(console)
            with progress:
                size = (await asyncio.to_thread(path.stat)).st_size
                task = progress.add_task(path.name, total=size, read=0, accepted=0)
                with _open(progress, task, path, file_format) as records:
                    return await import_records(
                        db,
                        redis,
                        org_id,
                        records,
                        clock,
                        batch_size=batch_size,
                        on_batch=lambda s: progress.update(task, read=s.read, accepted=s.accepted),
                        notice=lambda message: console.print(f"[yellow]{message}[/yellow]"),
                    )
    finally:
        await db.dispose()


@contextlib.contextmanager
def _open(
    progress: Progress, task: TaskID, path: Path, file_format: FileFormat
) -> Iterator[Iterator[Record]]:
    """The file's records, its bytes read advancing ``task``."""
    if file_format is FileFormat.jsonl:
        with progress.open(path, "rb", task_id=task) as handle:
            yield jsonl_records(handle)
    else:
        with progress.open(
            path, "r", encoding="utf-8-sig", errors="surrogateescape", newline="", task_id=task
        ) as stream:
            yield csv_records(stream)


def _examples(found: Occurrences) -> str:
    shown = "\n".join(f"line {line}: {message}" for line, message in found.first)
    more = found.count - len(found.first)
    return shown + (f"\n… and {more:,} more" if more > 0 else "")


def render_summary(summary: Summary) -> Group:
    """The summary table, then rejects and warnings by code with their first lines."""
    totals = Table(title="Import summary", show_header=False)
    totals.add_column("", style="bold")
    totals.add_column("", justify="right")
    totals.add_row("read", f"{summary.read:,}")
    totals.add_row("accepted", f"{summary.accepted:,}")
    totals.add_row("duplicates", f"{summary.duplicates:,}")
    totals.add_row("rejected", f"{summary.rejected_count:,}")
    parts: list[Any] = [totals]
    for title, by_code in (("Rejected", summary.rejected), ("Warnings", summary.warnings)):
        if by_code:
            table = Table(title=title)
            table.add_column("code")
            table.add_column("events", justify="right")
            table.add_column("first lines")
            for code in sorted(by_code):
                table.add_row(code, f"{by_code[code].count:,}", _examples(by_code[code]))
            parts.append(table)
    return Group(*parts)
