"""Helpers for tests of what the workers do: times, and the outbox as stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from models.store.webhook_messages import messages_page
from tests.conftest import Env

RULE = "id name trigger offset createdAt"
CREATE_RULE = f"""
mutation($input: CreateOffsetRuleInput!) {{ createOffsetRule(input: $input) {{ {RULE} }} }}"""
ARCHIVE_RULE = f"mutation($id: ID!) {{ archiveOffsetRule(id: $id) {{ {RULE} }} }}"
RULES = f"{{ offsetRules {{ {RULE} }} }}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def messages(env: Env, type: str) -> list[dict[str, Any]]:
    """The payloads of the organization's webhook messages of ``type``, oldest first."""
    async with env.read() as conn:
        found, _ = await messages_page(conn, env.org_id, 100, None, type=type)
    return [json.loads(message.body) for _, message in found]
