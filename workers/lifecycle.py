"""Cron: time-based lifecycle notifications and offset rules (SPEC §8), plus alert
re-evaluation when a period rolls over or a balance segment starts or ends.

Every occurrence is computed from the contract as it is now (so an edit reschedules
what is pending) and fires once: its key, (rule or "system", type, object), is claimed in
the same transaction as its message, and a key already claimed by another scheduler, or
fired before an edit moved its date, is skipped. Instants before the contract was created
(or, for an offset rule, before the rule was) never fire."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from billing.contracts import Contract
from billing.periods import periods
from billing.schedules import (
    OffsetOccurrence,
    OffsetRule,
    lifecycle_occurrences,
    offset_occurrences,
)
from models.store.contracts import ContractRecord, live_contracts_everywhere
from models.store.lifecycle import claim_occurrence, handled_keys, offset_rules_of
from notifications.catalog import WebhookEvent, lifecycle, offset_notification
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from workers.context import job_context, job_redis

Due = tuple[str, WebhookEvent | None]
"""(occurrence key, its message; None for a period roll-over, which only re-evaluates)."""


def _key(owner: str, kind: str, object_id: str) -> str:
    return f"{owner}|{kind}|{object_id}"


def _horizon(rules: Sequence[OffsetRule]) -> timedelta:
    """How far ahead occurrences must be computed for the rules' negative offsets."""
    ahead = [
        timedelta(days=31 * r.offset.months) + r.offset.delta for r in rules if r.offset.negative
    ]
    return max(ahead, default=timedelta(0)) + timedelta(days=1)


def due_occurrences(
    record: ContractRecord, rules: Sequence[OffsetRule], now: datetime
) -> list[Due]:
    """Everything of one contract due by ``now`` (handled or not), oldest first."""
    contract: Contract = record.contract
    since = record.created_at
    customer_id = contract.customer_id
    found = lifecycle_occurrences(contract, now + _horizon(rules))
    due: list[tuple[datetime, Due]] = [
        (o.at, (_key("system", o.type.value, o.object_id), lifecycle(o, customer_id)))
        for o in found
        if since <= o.at <= now
    ]
    offsets: list[OffsetOccurrence] = [d for r in rules for d in offset_occurrences(r, found)]
    due += [
        (
            d.at,
            (
                _key(d.rule_id, d.type, d.occurrence.object_id),
                offset_notification(d, customer_id),
            ),
        )
        for d in offsets
        if since <= d.at <= now
    ]
    due += [
        (p.starting_at, (_key("period", contract.id, p.starting_at.isoformat()), None))
        for p in periods(contract.schedule, now)
        if since < p.starting_at <= now
    ]
    return [item for _, item in sorted(due, key=lambda pair: (pair[0], pair[1][0]))]


async def lifecycle_scheduler(ctx: dict[str, Any]) -> int:
    """Fire what is due and not yet handled, one transaction per contract; returns the
    number of messages written."""
    jobs, pool = job_context(ctx), job_redis(ctx)
    now = jobs.clock()
    async with jobs.db.read() as conn:
        contracts = await live_contracts_everywhere(conn)
        rules = await offset_rules_of(conn)
        plans = [
            (org_id, record, due_occurrences(record, rules.get(org_id, []), now))
            for org_id, record in contracts
        ]
        done = await handled_keys(conn, [r.contract.id for _, r, due in plans if due])
    fired = 0
    for org_id, record, due in plans:
        pending = [(key, event) for key, event in due if key not in done]
        if not pending:
            continue
        outbox = Outbox()
        claimed = 0
        async with jobs.db.write() as conn:
            for key, event in pending:
                if not await claim_occurrence(conn, org_id, record.contract.id, key, now):
                    continue
                claimed += 1
                if event is not None:
                    await outbox.emit(conn, org_id, event, now)
                    fired += 1
            if claimed:
                customer_id = record.contract.customer_id
                await outbox.evaluate(conn, org_id, [customer_id], now)
                outbox.push(org_id, (Topic.BALANCE,), [customer_id])
        await outbox.dispatch(pool)
    return fired
