"""Building the ARQ worker, standalone (``meterline worker``) or inside the API process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from arq import Worker
from arq.connections import ArqRedis
from arq.worker import func

from models.db import Database
from notifications.queue import BACKFILL_METRIC
from workers.backfill import backfill_metric
from workers.context import CONTEXT_KEY, JobContext

FUNCTIONS = [func(backfill_metric, name=BACKFILL_METRIC, max_tries=10)]


def build_worker(
    pool: ArqRedis,
    db: Database,
    clock: Callable[[], datetime],
    *,
    handle_signals: bool,
    burst: bool = False,
) -> Worker:
    """A worker on ``pool`` whose jobs reach the database through ``db``."""
    ctx: dict[str, Any] = {CONTEXT_KEY: JobContext(db=db, clock=clock)}
    return Worker(
        functions=FUNCTIONS,
        redis_pool=pool,
        ctx=ctx,
        handle_signals=handle_signals,
        burst=burst,
        poll_delay=0.05,
        keep_result=60,
    )
