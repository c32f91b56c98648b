"""A worker rides out Redis going away (issue 9): ARQ's polling loop ends on a connection
error, and ``workers.worker.run_worker`` (what ``meterline worker`` and the in-process
worker of ``meterline serve`` run) polls again once Redis is back, in the same process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from arq import Worker
from arq.connections import RedisSettings, create_pool

from notifications.queue import DELIVER_WEBHOOK
from tests.conftest import Env
from tests.faults.support import RedisServer
from workers.worker import build_worker, run_worker


async def jobs_done(worker: Worker, running: asyncio.Task[None], at_least: int) -> None:
    """Wait (30 s at most) until ``worker`` completed ``at_least`` jobs, failing at once
    if it stopped."""
    async with asyncio.timeout(30):
        while worker.jobs_complete < at_least:
            assert not running.done(), running
            await asyncio.sleep(0.05)


async def test_a_worker_polls_again_after_redis_was_killed_and_restarted(
    env: Env, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    pool = await create_pool(RedisSettings.from_dsn(redis.url))
    worker = build_worker(pool, env.db, env.clock, handle_signals=False, webhooks=env.webhooks)
    running = asyncio.create_task(run_worker(worker))
    try:
        await pool.enqueue_job(DELIVER_WEBHOOK, "whd_none", _job_id="before")
        await jobs_done(worker, running, 1)
        redis.kill()
        await asyncio.sleep(1)  # let the polling loop hit the dead server (not a timing assert)
        assert not running.done(), running
        redis.restart()
        await pool.enqueue_job(DELIVER_WEBHOOK, "whd_none", _job_id="after")
        await jobs_done(worker, running, 2)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await pool.aclose()
        redis.close()
