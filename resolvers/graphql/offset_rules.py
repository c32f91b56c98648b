"""Offset notification rules (SPEC §8): `<trigger>.offset` webhooks at a lifecycle event's
time plus a signed ISO-8601 duration."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.errors import ValidationError
from billing.schedules import OffsetRule as CoreOffsetRule
from models.store.lifecycle import archive_offset_rule as archive_rule
from models.store.lifecycle import create_offset_rule as create_rule
from models.store.lifecycle import offset_rules_of
from resolvers.graphql.context import Context, mutation, read, require
from schema.views import view
from schema.webhooks import CreateOffsetRuleInput, OffsetRule


def offset_rule_view(rule: CoreOffsetRule) -> OffsetRule:
    return view(OffsetRule, rule, offset=rule.offset.text)


def _changes(rule: CoreOffsetRule) -> dict[str, Any]:
    return {"name": rule.name, "trigger": rule.trigger.value, "offset": rule.offset.text}


async def offset_rules(info: Info[Context, Any]) -> list[OffsetRule]:
    """The organization's live rules, oldest first."""
    principal = require(info, "read")
    async with read(info) as conn:
        found = await offset_rules_of(conn, [principal.org_id])
    return [offset_rule_view(rule) for rule in found.get(principal.org_id, [])]


async def create_offset_rule(info: Info[Context, Any], input: CreateOffsetRuleInput) -> OffsetRule:
    """A rule fires for trigger instants from its creation on (no back-fill)."""
    principal = require(info, "admin")
    if not input.name.strip():
        raise ValidationError("name", "must not be empty")
    async with mutation(info, principal) as (conn, audit):
        created = await create_rule(
            conn,
            principal.org_id,
            name=input.name,
            trigger=input.trigger,
            offset=input.offset,
            now=info.context.services.clock(),
            uniqueness_key=input.uniqueness_key,
        )
        await audit("offset_rule", created.id, _changes(created))
    return offset_rule_view(created)


async def archive_offset_rule(info: Info[Context, Any], id: strawberry.ID) -> OffsetRule:
    """Stop a rule: occurrences not yet fired are not sent."""
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        archived = await archive_rule(conn, principal.org_id, str(id), now)
        await audit("offset_rule", archived.id, {"archived_at": now.isoformat()})
    return offset_rule_view(archived)
