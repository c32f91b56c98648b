"""What the API and the jobs ask the workers to do: job names and deterministic job ids.

ARQ ignores an enqueue whose job id is already queued or running, so a deterministic id
collapses a burst into one job. Redis is not the truth: a failed enqueue is logged and
the database-side sweep (deliveries) or the next change (alerts) makes up for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime

from arq.connections import ArqRedis
from arq.constants import default_queue_name, in_progress_key_prefix, job_key_prefix

BACKFILL_METRIC = "backfill_metric"
EVALUATE_ALERTS = "evaluate_alerts"
DELIVER_WEBHOOK = "deliver_webhook"
SYNC_STRIPE = "sync_stripe"

log = logging.getLogger(__name__)


async def enqueue_backfill(pool: ArqRedis, metric_id: str) -> None:
    """Ask for the back-fill of a new metric's rollups (idempotent job)."""
    await pool.enqueue_job(BACKFILL_METRIC, metric_id, _job_id=f"{BACKFILL_METRIC}:{metric_id}")


def _generation_key(org_id: str, customer_id: str) -> str:
    return f"meterline:alerts-generation:{org_id}:{customer_id}"


async def enqueue_alert_evaluation(
    pool: ArqRedis, org_id: str, customer_ids: Iterable[str]
) -> None:
    """Ask for ``evaluate_alerts`` of each customer, after the change is committed.

    The job id carries the customer's evaluation generation, which a job bumps when it
    starts: changes before that collapse into the queued job (which will see them), and a
    change that lands while a job runs gets a new id, so one more run follows. Never a
    missed crossing, never a job per event."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return
    try:
        generations = await pool.mget([_generation_key(org_id, c) for c in wanted])
        for customer_id, generation in zip(wanted, generations, strict=True):
            number = int(generation or 0)
            await pool.enqueue_job(
                EVALUATE_ALERTS,
                org_id,
                customer_id,
                _job_id=f"{EVALUATE_ALERTS}:{org_id}:{customer_id}:{number}",
            )
    except Exception:  # Redis is not the truth; the next change asks again
        log.exception("could not enqueue alert evaluation for %s customers", len(wanted))


async def start_alert_evaluation(pool: ArqRedis, org_id: str, customer_id: str) -> None:
    """Called by ``evaluate_alerts`` as it starts: later changes enqueue a new run."""
    await pool.incr(_generation_key(org_id, customer_id))


def _slot(job: str, row_id: str, at: datetime) -> str:
    """The job id of ``job`` for a row due at ``at``: it names the attempt's slot."""
    return f"{job}:{row_id}:{at.timestamp():.6f}"


async def _enqueue_due(pool: ArqRedis, job: str, due: Sequence[tuple[str, datetime]]) -> None:
    """Enqueue ``job`` for each (row id, due time), deferred to its time; the job id names
    the attempt's slot, so a retry is a new job and a sweep of a lost job re-creates the
    same one."""
    for row_id, at in due:
        # deferred by wall time (ARQ's schedule), never into the past: a job due long ago
        # (a sweep after downtime, a test clock) runs now
        wait = max(0.0, at.timestamp() - time.time())
        try:
            await pool.enqueue_job(job, row_id, _job_id=_slot(job, row_id, at), _defer_by=wait)
        except Exception:  # the outbox sweeper re-enqueues what is due
            log.exception("could not enqueue %s of %s", job, row_id)


async def enqueue_deliveries(pool: ArqRedis, due: Sequence[tuple[str, datetime]]) -> None:
    """Ask for ``deliver_webhook`` of each (delivery id, due time)."""
    await _enqueue_due(pool, DELIVER_WEBHOOK, due)


# For each job id: unless a worker has started it, take it off the queue and delete it; the
# in-progress key is set briefly, so a worker between its check and its start (ARQ watches
# that key) gives the job up instead of finding its definition gone.
_WITHDRAW = """
local withdrawn = 0
for i = 4, #ARGV do
  local running = ARGV[3] .. ARGV[i]
  if redis.call('exists', running) == 0 and redis.call('zrem', ARGV[1], ARGV[i]) == 1 then
    redis.call('set', running, 'withdrawn', 'PX', 5000)
    redis.call('del', ARGV[2] .. ARGV[i])
    withdrawn = withdrawn + 1
  end
end
return withdrawn
"""


async def withdraw_deliveries(pool: ArqRedis, done: Sequence[tuple[str, datetime]]) -> int:
    """Withdraw the queued ``deliver_webhook`` jobs of (delivery id, due time) pairs whose
    attempt another job has already made (a batch): they would only find nothing to do.
    Atomic per job (one Lua script); a job a worker has started is left to run (it finds
    its delivery settled). Redis is not the truth: a failure is logged and the jobs run.
    Returns how many jobs were withdrawn."""
    if not done:
        return 0
    ids = [_slot(DELIVER_WEBHOOK, row_id, at) for row_id, at in done]
    try:
        keys = (default_queue_name, job_key_prefix, in_progress_key_prefix)
        withdrawn = await pool.eval(_WITHDRAW, 0, *keys, *ids)  # type: ignore[misc]
    except Exception:
        log.exception("could not withdraw %s delivery jobs", len(ids))
        return 0
    return int(withdrawn)


async def enqueue_stripe_syncs(pool: ArqRedis, due: Sequence[tuple[str, datetime]]) -> None:
    """Ask for ``sync_stripe`` of each (invoice id, due time): a push to Stripe, a retry,
    or voiding an invoice there."""
    await _enqueue_due(pool, SYNC_STRIPE, due)


async def queue_depth(pool: ArqRedis) -> tuple[int, int]:
    """The jobs in ARQ's queue: (all of them, those due now by wall time, which is ARQ's
    schedule); the rest are deferred (webhook retries, Stripe pushes waiting their time)."""
    async with pool.pipeline(transaction=False) as pipe:
        pipe.zcard(default_queue_name)
        pipe.zcount(default_queue_name, "-inf", int(time.time() * 1000))
        total, due = await pipe.execute()
    return int(total), int(due)
