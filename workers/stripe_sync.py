"""Job: push one finalized invoice to Stripe, or void it there (SPEC §11).

The push row is the truth: a job leases it, works, and records each Stripe object as soon
as it exists, so a job that dies half-way is finished by the next one without making
anything twice. Failures Stripe may get over are retried on the schedule; the others, and
the last retry, leave the invoice in ``billing_provider_error`` with an
``invoice.billing_provider_error`` webhook (``retryInvoiceSync`` starts again)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billing.errors import ValidationError
from billing.invoices import InvoiceStatus
from billing.provider_invoice import PaymentStatus, SyncStatus, provider_items, provider_total
from integrations.stripe import (
    Customer,
    Keys,
    StripeConnection,
    StripeFailure,
    TotalMismatch,
)
from models.store.customers import customers_by_id
from models.store.invoice_syncs import (
    Sync,
    fail_attempt,
    lease_sync,
    record_progress,
    release,
    settle,
)
from models.store.invoices import StoredInvoice, invoice_by_id
from models.store.stripe_accounts import StripeSettings, stripe_settings_of
from notifications.catalog import EventType, WebhookEvent, invoice_at_provider
from notifications.outbox import Outbox
from notifications.retry import JITTER, next_delay
from notifications.ssrf import check_destination
from workers.context import JobContext, job_context, job_redis

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
"""How long a worker holds a push between two recorded steps (each Stripe call has a
20 s timeout); after it another worker may take over."""

VOIDED_BEFORE_SENT = "voided before it was sent"
NOT_SET_UP = "Stripe is not set up for this organization (setStripeSettings)"
PAID_AT_STRIPE = "voided in Meterline, but the Stripe invoice is already paid: refund it in Stripe"


class Stop(Exception):
    """Stop this push: the lease was lost (another worker took over, ``void`` False) or
    our invoice was voided meanwhile (``void`` True: voiding it at Stripe comes next)."""

    def __init__(self, *, void: bool) -> None:
        super().__init__("voided meanwhile" if void else "lease lost")
        self.void = void


@dataclass(frozen=True)
class Work:
    """What a leased push needs: the invoice, the organization's Stripe settings and the
    Stripe customer (the one the Stripe invoice was made for, else the customer's link;
    None when there is none)."""

    sync: Sync
    stored: StoredInvoice
    settings: StripeSettings | None
    customer: Customer | None

    @property
    def keys(self) -> Keys:
        return Keys(self.sync.invoice_id, self.sync.key_generation)


async def _load(jobs: JobContext, invoice_id: str, now: datetime) -> Work | None:
    async with jobs.db.write(urgent=True) as conn:
        sync = await lease_sync(conn, invoice_id, now, LEASE)
        if sync is None:
            return None
        stored = await invoice_by_id(conn, sync.org_id, invoice_id)
        assert stored is not None  # a push row references its invoice
        settings = await stripe_settings_of(conn, sync.org_id)
        record = (await customers_by_id(conn, sync.org_id, [sync.customer_id]))[sync.customer_id]
    stripe_id, method = sync.stripe_customer_id, sync.collection_method
    if stripe_id is None:
        stripe_id, method = record.stripe_customer_id, record.stripe_collection_method
    customer = None
    if stripe_id:
        customer = Customer(stripe_id, method or "charge_automatically", sync.days_until_due)
    return Work(sync, stored, settings, customer)


async def _connect(jobs: JobContext, settings: StripeSettings) -> StripeConnection:
    """A connection to the organization's Stripe, whose ``apiBase`` (a test server) is
    checked again against the SSRF guard, as webhook destinations are before each send."""
    if settings.api_base is not None:
        try:
            await check_destination(settings.api_base, jobs.webhooks.allowed_private)
        except ValidationError as refused:
            raise StripeFailure(f"apiBase refused: {refused.message}", retryable=False) from None
    return StripeConnection(settings)


def _missing(work: Work) -> str | None:
    if work.settings is None:
        return NOT_SET_UP
    if work.customer is None:
        return (
            f"customer {work.sync.customer_id} has no stripe_customer_id (link it with "
            "setBillingProvider, then retryInvoiceSync)"
        )
    return None


async def sync_stripe(ctx: dict[str, Any], invoice_id: str) -> str:
    """Do the due work on an invoice's Stripe push: push it (or finish a push), or void
    it at Stripe after our invoice was voided. Returns what happened: skipped | synced |
    not_sent | voided | retrying | failed. Safe to run twice or on two workers at once."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    outbox = Outbox()
    result = "skipped"
    for _ in range(2):  # a push that learns of a void stops, and the void follows at once
        work = await _load(jobs, invoice_id, jobs.clock())
        if work is None:
            break
        try:
            result = await _attempt(jobs, work, outbox)
            break
        except Stop as stop:
            if not stop.void:
                break
            async with jobs.db.write(urgent=True) as conn:
                await release(conn, work.sync, jobs.clock())
    await outbox.dispatch(pool)
    return result


async def _attempt(jobs: JobContext, work: Work, outbox: Outbox) -> str:
    try:
        return await _run(jobs, work, outbox)
    except StripeFailure as failure:
        return await _failed(jobs, work, outbox, failure)
    except Stop:
        raise
    except Exception as error:  # a bug or a surprise from Stripe: retried, then reported
        log.exception("the Stripe push of %s failed unexpectedly", work.sync.invoice_id)
        unexpected = StripeFailure(f"unexpected error: {error!r}", retryable=True)
        return await _failed(jobs, work, outbox, unexpected)


async def _run(jobs: JobContext, work: Work, outbox: Outbox) -> str:
    sync, invoice = work.sync, work.stored.invoice
    voided = sync.void_requested or invoice.status is InvoiceStatus.VOID
    if voided:
        return await _void(jobs, work, outbox)
    if not invoice.total and not (work.settings and work.settings.send_zero_total):
        await _settle(jobs, work, outbox, SyncStatus.SKIPPED, error="zero total: not sent")
        return "not_sent"
    try:
        items = provider_items(invoice)
    except ValidationError as error:  # the same every time: no retry can help
        failure = StripeFailure(f"cannot be sent: {error.message}", retryable=False)
        return await _failed(jobs, work, outbox, failure)
    missing = _missing(work)
    if missing is not None:
        return await _failed(jobs, work, outbox, StripeFailure(missing, retryable=False))
    assert work.settings is not None and work.customer is not None
    connection = await _connect(jobs, work.settings)
    try:
        pushed = await connection.push(
            work.keys,
            invoice,
            items,
            work.customer,
            sync.stripe_invoice_id,
            sync.items,
            _progress(jobs, sync),
        )
    except TotalMismatch as different:
        await _settle(
            jobs,
            work,
            outbox,
            SyncStatus.BILLING_PROVIDER_ERROR,
            stripe_total=different.stripe_total,
            mismatch=True,
            error=different.message,
            failed=True,
        )
        return "failed"
    finally:
        await connection.close()
    ours = provider_total(invoice)
    mismatch = pushed.total != ours
    await _settle(
        jobs,
        work,
        outbox,
        SyncStatus.SYNCED,
        payment=PaymentStatus.PAID if pushed.status == "paid" else PaymentStatus.OPEN,
        stripe_total=pushed.total,
        mismatch=mismatch,
        error=f"total mismatch: Stripe has {pushed.total}, Meterline {ours}" if mismatch else None,
    )
    return "synced"


async def _void(jobs: JobContext, work: Work, outbox: Outbox) -> str:
    """Our invoice was voided: void (or delete the draft of) its Stripe invoice. A paid
    Stripe invoice is left alone and reported, since its customer paid for it."""
    sync = work.sync
    if sync.stripe_invoice_id is None:
        await _settle(jobs, work, outbox, SyncStatus.SKIPPED, error=VOIDED_BEFORE_SENT)
        return "not_sent"
    if work.settings is None:
        return await _failed(jobs, work, outbox, StripeFailure(NOT_SET_UP, retryable=False))
    connection = await _connect(jobs, work.settings)
    try:
        before = await connection.void(work.keys, sync.stripe_invoice_id)
    finally:
        await connection.close()
    if before == "paid":
        status, payment, error = (
            SyncStatus.BILLING_PROVIDER_ERROR,
            PaymentStatus.PAID,
            PAID_AT_STRIPE,
        )
    elif before == "draft":
        status, payment, error = SyncStatus.SKIPPED, PaymentStatus.VOID, VOIDED_BEFORE_SENT
    else:
        status, payment, error = SyncStatus.SYNCED, PaymentStatus.VOID, None
    await _settle(jobs, work, outbox, status, payment=payment, error=error)
    return "voided"


def _progress(jobs: JobContext, sync: Sync) -> Any:
    async def record(**made: Any) -> None:
        async with jobs.db.write(urgent=True) as conn:
            now = await record_progress(conn, sync, jobs.clock(), LEASE, **made)
        if now is None:
            raise Stop(void=False)
        if now.void_requested and not sync.void_requested:
            raise Stop(void=True)

    return record


async def _failed(jobs: JobContext, work: Work, outbox: Outbox, failure: StripeFailure) -> str:
    now = jobs.clock()
    delay = None
    if failure.retryable:
        jitter = random.uniform(-JITTER, JITTER)
        delay = next_delay(work.sync.attempts + 1, jobs.stripe_schedule, jitter)
    if delay is None:
        status = SyncStatus.BILLING_PROVIDER_ERROR
        await _settle(jobs, work, outbox, status, error=failure.message, failed=True)
        return "failed"
    async with jobs.db.write(urgent=True) as conn:
        due = await fail_attempt(conn, work.sync, now, failure.message, now + delay)
    if due is None:
        raise Stop(void=False)
    outbox.sync_invoices([(work.sync.invoice_id, due)])
    return "retrying"


async def _settle(
    jobs: JobContext,
    work: Work,
    outbox: Outbox,
    status: SyncStatus,
    *,
    payment: PaymentStatus | None = None,
    stripe_total: int | None = None,
    mismatch: bool = False,
    error: str | None = None,
    failed: bool = False,
) -> None:
    """End the work on the push and write the webhooks it causes, in one transaction:
    ``invoice.billing_provider_error`` when it failed for good, the totals differ or a
    voided invoice was paid at Stripe; ``invoice.paid`` when Stripe settled it at once (a
    zero total) and no event of Stripe's said so first."""
    now = jobs.clock()
    sync = work.sync
    async with jobs.db.write(urgent=True) as conn:
        moved = await settle(
            conn,
            sync,
            now,
            status=status,
            payment_status=payment,
            stripe_total=stripe_total,
            total_mismatch=mismatch,
            error=error,
            failed=failed,
        )
        if moved is None:
            raise Stop(void=False)
        before, after = moved
        events: list[WebhookEvent] = []
        # a void that arrived meanwhile makes the push's own failure moot
        if (status is SyncStatus.BILLING_PROVIDER_ERROR or mismatch) and not after.void_requested:
            events.append(_event(EventType.INVOICE_BILLING_PROVIDER_ERROR, work, after, error))
        paid_now = after.payment_status is PaymentStatus.PAID
        if paid_now and before.payment_status is not PaymentStatus.PAID:
            events.append(_event(EventType.INVOICE_PAID, work, after))
        for event in events:
            await outbox.emit(conn, sync.org_id, event, now)
    if after.next_attempt_at is not None:  # voided meanwhile: void it at Stripe now
        outbox.sync_invoices([(sync.invoice_id, after.next_attempt_at)])


def _event(kind: EventType, work: Work, after: Sync, error: str | None = None) -> WebhookEvent:
    return invoice_at_provider(
        kind,
        after.invoice_id,
        work.stored.invoice,
        after.stripe_invoice_id,
        payment_status=after.payment_status.value,
        error=error,
    )
