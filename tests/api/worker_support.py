"""Helpers for tests of what the workers do: times, and the outbox as stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.api.support import data
from tests.conftest import Env
from workers.worker import build_worker

RULE = "id name trigger offset createdAt"
CREATE_RULE = f"""
mutation($input: CreateOffsetRuleInput!) {{ createOffsetRule(input: $input) {{ {RULE} }} }}"""
ARCHIVE_RULE = f"mutation($id: ID!) {{ archiveOffsetRule(id: $id) {{ {RULE} }} }}"
RULES = f"{{ offsetRules {{ {RULE} }} }}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def messages(env: Env, type: str) -> list[dict[str, Any]]:
    """The payloads of the organization's webhook messages of ``type``, oldest first (read
    with ``webhookMessages``, as an integration would)."""
    query = (
        "query($type: String) { webhookMessages(first: 100, type: $type) { nodes { payload } } }"
    )
    found = await data(env, query, type=type)
    return [node["payload"] for node in found["webhookMessages"]["nodes"]]


def ctx_of(env: Env) -> dict[str, Any]:
    """The context a worker hands its jobs (to call a job or a cron directly)."""
    worker = build_worker(
        env.redis, env.db, env.clock, handle_signals=False, burst=True, webhooks=env.webhooks
    )
    return {**worker.ctx, "redis": env.redis}
