"""Cron: forget dedupe keys older than the dedupe window (SPEC §1: 34 days), and Stripe
event ids as old (Stripe resends an event for 3 days, and refuses one signed more than
5 minutes ago)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from models.store.dedupe import prune_dedupe
from models.store.stripe_accounts import prune_stripe_events
from workers.context import job_context

DEDUPE_WINDOW = timedelta(days=34)


async def prune_dedupe_keys(ctx: dict[str, Any]) -> int:
    jobs = job_context(ctx)
    before = jobs.clock() - DEDUPE_WINDOW
    async with jobs.db.write() as conn:
        return await prune_dedupe(conn, before) + await prune_stripe_events(conn, before)
