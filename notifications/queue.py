"""What the API asks the workers to do: job names and deterministic job ids.

ARQ ignores an enqueue whose job id is already queued or running, so a deterministic id
collapses a burst of requests into one job.
"""

from __future__ import annotations

from arq.connections import ArqRedis

BACKFILL_METRIC = "backfill_metric"


async def enqueue_backfill(pool: ArqRedis, metric_id: str) -> None:
    """Ask for the back-fill of a new metric's rollups (idempotent job)."""
    await pool.enqueue_job(BACKFILL_METRIC, metric_id, _job_id=f"{BACKFILL_METRIC}:{metric_id}")
