"""Dedupe keys are kept 34 days (SPEC §1), then pruned by a daily job."""

from __future__ import annotations

from datetime import timedelta

from tests.api.support import iso, llm, send, shop
from tests.conftest import Env
from workers.maintenance import prune_dedupe_keys
from workers.worker import build_worker


async def test_a_transaction_id_is_a_duplicate_for_34_days_only(env: Env) -> None:
    await shop(env)
    start = env.clock()
    await send(env, llm("old", "acme", 1, at=iso(start)))
    env.clock.set(start + timedelta(days=20))
    await send(env, llm("recent", "acme", 1, at=iso(env.clock())))
    env.clock.set(start + timedelta(days=34, seconds=1))
    worker = build_worker(env.redis, env.db, env.clock, handle_signals=False, burst=True)
    assert await prune_dedupe_keys({**worker.ctx, "redis": env.redis}) == 1
    now = iso(env.clock())
    body = await env.ingest([llm("old", "acme", 1, at=now), llm("recent", "acme", 1, at=now)])
    assert (body.json()["accepted"], body.json()["duplicates"]) == (1, ["recent"])
