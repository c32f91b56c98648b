"""The push of finalized invoices to Stripe, as stored: what is owed, who is pushing it
(a fenced lease), what Stripe already holds, and the payment status Stripe reports.
The row is the truth; a job only acts on a due, unleased push."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.provider_invoice import PaymentStatus, SyncStatus, next_payment_status
from models.billing_providers import InvoiceSyncRow
from models.ids import new_id
from models.store.bound_rows import in_chunks
from models.tables import table

syncs = table(InvoiceSyncRow)

ERROR_CHARS = 500
DUE_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Sync:
    invoice_id: str
    org_id: str
    customer_id: str
    days_until_due: int
    stripe_customer_id: str | None
    collection_method: str | None
    key_generation: int
    status: SyncStatus
    payment_status: PaymentStatus
    stripe_invoice_id: str | None
    items: dict[str, str]
    stripe_total: int | None
    total_mismatch: bool
    void_requested: bool
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    synced_at: datetime | None
    updated_at: datetime
    lease_token: str | None = field(default=None, repr=False)


def _sync(row: Any) -> Sync:
    return Sync(
        invoice_id=row.invoice_id,
        org_id=row.org_id,
        customer_id=row.customer_id,
        days_until_due=row.days_until_due,
        stripe_customer_id=row.stripe_customer_id,
        collection_method=row.collection_method,
        key_generation=row.key_generation,
        status=SyncStatus(row.status),
        payment_status=PaymentStatus(row.payment_status),
        stripe_invoice_id=row.stripe_invoice_id,
        items=dict(row.items),
        stripe_total=row.stripe_total,
        total_mismatch=row.total_mismatch,
        void_requested=row.void_requested,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        synced_at=row.synced_at,
        updated_at=row.updated_at,
        lease_token=row.lease_token,
    )


async def _locked(conn: AsyncConnection, where: Any) -> Sync | None:
    row = (await conn.execute(select(syncs).where(where).with_for_update())).first()
    return None if row is None else _sync(row)


async def request_sync(
    conn: AsyncConnection,
    org_id: str,
    invoice_id: str,
    customer_id: str,
    days_until_due: int,
    now: datetime,
) -> None:
    """Owe a push of a just-finalized invoice, due now (in the finalization's transaction)."""
    await conn.execute(
        syncs.insert().values(
            invoice_id=invoice_id,
            org_id=org_id,
            customer_id=customer_id,
            days_until_due=days_until_due,
            key_generation=0,
            status=SyncStatus.PENDING.value,
            payment_status=PaymentStatus.NONE.value,
            items={},
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


async def request_void(conn: AsyncConnection, org_id: str, invoice_id: str, now: datetime) -> None:
    """Our invoice was voided: owe voiding it at Stripe (a paid one is reported instead),
    unless it is void there already."""
    await conn.execute(
        update(syncs)
        .where(
            (syncs.c.invoice_id == invoice_id)
            & (syncs.c.org_id == org_id)
            & (syncs.c.payment_status != PaymentStatus.VOID.value)
        )
        .values(void_requested=True, next_attempt_at=now, attempts=0, updated_at=now)
    )


async def retry_failed(conn: AsyncConnection, org_id: str, invoice_id: str, now: datetime) -> bool:
    """Start a push that ended in ``billing_provider_error`` (after the cause was fixed)
    or was skipped (a zero total, before ``sendZeroTotalInvoices``) again, with fresh
    idempotency keys. False when the invoice has no such push."""
    result = await conn.execute(
        update(syncs)
        .where(
            (syncs.c.invoice_id == invoice_id)
            & (syncs.c.org_id == org_id)
            & syncs.c.status.in_(
                [SyncStatus.BILLING_PROVIDER_ERROR.value, SyncStatus.SKIPPED.value]
            )
        )
        .values(
            status=SyncStatus.PENDING.value,
            attempts=0,
            key_generation=syncs.c.key_generation + 1,
            stripe_total=None,
            total_mismatch=False,
            next_attempt_at=now,
            last_error=None,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


async def lease_sync(
    conn: AsyncConnection, invoice_id: str, now: datetime, lease: timedelta
) -> Sync | None:
    """Take a due, unleased push for ``lease`` (the result carries the lease token that
    fences every later write); None when it is not due, leased by another worker, or has
    nothing left to do (so duplicate jobs do nothing)."""
    token = new_id("lease")
    result = await conn.execute(
        update(syncs)
        .where(
            (syncs.c.invoice_id == invoice_id)
            & (syncs.c.next_attempt_at <= now + DUE_TOLERANCE)
            & or_(syncs.c.leased_until.is_(None), syncs.c.leased_until <= now)
        )
        .values(leased_until=now + lease, lease_token=token)
    )
    if not result.rowcount:
        return None
    return await _locked(conn, syncs.c.invoice_id == invoice_id)


def _fenced(sync: Sync) -> Any:
    return (syncs.c.invoice_id == sync.invoice_id) & (syncs.c.lease_token == sync.lease_token)


async def record_progress(
    conn: AsyncConnection, sync: Sync, now: datetime, lease: timedelta, **made: Any
) -> Sync | None:
    """Record what Stripe now holds (``items`` made so far; ``stripe_invoice_id`` with the
    ``stripe_customer_id`` and ``collection_method`` it was made for) and extend the lease.
    The push as it is now (its ``void_requested`` may have been set meanwhile), or None
    when the lease was lost (another worker took over)."""
    values: dict[str, Any] = {"leased_until": now + lease, "updated_at": now, **made}
    if not (await conn.execute(update(syncs).where(_fenced(sync)).values(**values))).rowcount:
        return None
    return await _locked(conn, _fenced(sync))


async def settle(
    conn: AsyncConnection,
    sync: Sync,
    now: datetime,
    *,
    status: SyncStatus,
    payment_status: PaymentStatus | None = None,
    stripe_total: int | None = None,
    total_mismatch: bool = False,
    error: str | None = None,
    failed: bool = False,
) -> tuple[Sync, Sync] | None:
    """End the work on a push (``failed``: with a failed attempt, counted): no further
    attempt is due, unless our invoice was voided meanwhile (then voiding it at Stripe is
    due now); the payment status moves by :func:`next_payment_status`. The push locked
    before and after, or None when the lease was lost."""
    before = await _locked(conn, _fenced(sync))
    if before is None:
        return None
    void_arrived = before.void_requested and not sync.void_requested
    values: dict[str, Any] = {
        "status": status.value,
        "next_attempt_at": now if void_arrived else None,
        "leased_until": None,
        "lease_token": None,
        "void_requested": void_arrived,
        "attempts": before.attempts + 1 if failed else before.attempts,
        "last_error": None if error is None else error[:ERROR_CHARS],
        "updated_at": now,
    }
    if payment_status is not None:
        values["payment_status"] = next_payment_status(before.payment_status, payment_status)
    if stripe_total is not None:
        values.update(stripe_total=stripe_total, total_mismatch=total_mismatch)
    if status is SyncStatus.SYNCED and before.status is not SyncStatus.SYNCED:
        values["synced_at"] = now
    await conn.execute(update(syncs).where(_fenced(sync)).values(**values))
    after = await _locked(conn, syncs.c.invoice_id == sync.invoice_id)
    assert after is not None
    return before, after


async def release(conn: AsyncConnection, sync: Sync, now: datetime) -> None:
    """Give a leased push back, due now (its worker stops to let the void go first)."""
    await conn.execute(
        update(syncs)
        .where(_fenced(sync))
        .values(leased_until=None, lease_token=None, next_attempt_at=now, updated_at=now)
    )


async def fail_attempt(
    conn: AsyncConnection, sync: Sync, now: datetime, error: str, retry_at: datetime
) -> datetime | None:
    """Count a failed attempt and make the next one due at ``retry_at`` (at once when our
    invoice was voided meanwhile: voiding it at Stripe goes first). The time it is due,
    or None when the lease was lost."""
    before = await _locked(conn, _fenced(sync))
    if before is None:
        return None
    due = now if before.void_requested and not sync.void_requested else retry_at
    await conn.execute(
        update(syncs)
        .where(_fenced(sync))
        .values(
            attempts=syncs.c.attempts + 1,
            next_attempt_at=due,
            leased_until=None,
            lease_token=None,
            last_error=error[:ERROR_CHARS],
            updated_at=now,
        )
    )
    return due


async def due_syncs(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, datetime]]:
    """(invoice id, due time) of due, unleased pushes, oldest first (what Redis may have
    lost)."""
    query = (
        select(syncs.c.invoice_id, syncs.c.next_attempt_at)
        .where(
            (syncs.c.next_attempt_at <= now)
            & or_(syncs.c.leased_until.is_(None), syncs.c.leased_until <= now)
        )
        .order_by(syncs.c.next_attempt_at)
        .limit(limit)
    )
    return [(row.invoice_id, row.next_attempt_at) for row in await conn.execute(query)]


async def syncs_of(
    conn: AsyncConnection, org_id: str, invoice_ids: Sequence[str]
) -> dict[str, Sync]:
    """The pushes of these invoices of ``org_id`` (invoices never pushed are absent)."""
    found: dict[str, Sync] = {}
    for chunk in in_chunks(sorted(set(invoice_ids))):
        query = select(syncs).where((syncs.c.org_id == org_id) & syncs.c.invoice_id.in_(chunk))
        found.update((row.invoice_id, _sync(row)) for row in await conn.execute(query))
    return found


async def report_payment(
    conn: AsyncConnection,
    org_id: str,
    stripe_invoice_id: str,
    reported: PaymentStatus,
    now: datetime,
) -> tuple[Sync, Sync] | None:
    """Move the payment status of the push that made ``stripe_invoice_id`` by
    :func:`next_payment_status` (the row is locked until commit): (before, after), or
    None when no push of ``org_id`` made it."""
    where = and_(syncs.c.org_id == org_id, syncs.c.stripe_invoice_id == stripe_invoice_id)
    before = await _locked(conn, where)
    if before is None:
        return None
    status = next_payment_status(before.payment_status, reported)
    await conn.execute(
        update(syncs)
        .where(syncs.c.invoice_id == before.invoice_id)
        .values(payment_status=status.value, updated_at=now)
    )
    after = await _locked(conn, syncs.c.invoice_id == before.invoice_id)
    assert after is not None
    return before, after
