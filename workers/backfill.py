"""Job: roll up stored events for a metric created after they arrived."""

from __future__ import annotations

from typing import Any

from models.store.backfill import backfill_metric as backfill_in_store
from workers.context import job_context


async def backfill_metric(ctx: dict[str, Any], metric_id: str) -> int | None:
    jobs = job_context(ctx)
    async with jobs.db.write() as conn:
        return await backfill_in_store(conn, metric_id, jobs.clock())
