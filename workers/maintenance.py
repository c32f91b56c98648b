"""Cron: forget dedupe keys older than the dedupe window (SPEC §1: 34 days)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from models.store.dedupe import prune_dedupe
from workers.context import job_context

DEDUPE_WINDOW = timedelta(days=34)


async def prune_dedupe_keys(ctx: dict[str, Any]) -> int:
    jobs = job_context(ctx)
    async with jobs.db.write() as conn:
        return await prune_dedupe(conn, jobs.clock() - DEDUPE_WINDOW)
