"""Alert rules (validated by the core) and their stored states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.alerts import AlertRule, AlertState, AlertStatus, validate_rule
from billing.errors import NotFoundError
from models.alerts import AlertRow, AlertStateRow
from models.codec import decode, to_json
from models.ids import new_id
from models.store import dialect
from models.store.customers import check_customer
from models.store.metrics import list_metrics
from models.store.rollups import digest, group_json, parse_group_json
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

alerts = table(AlertRow)
states = table(AlertStateRow)
EVALUATED = "evaluated"
"""The ``group_hash`` of a marker row: the alert has been evaluated for the customer (so no
later evaluation is its creation's, whatever groups appear)."""


@dataclass(frozen=True)
class AlertRecord:
    rule: AlertRule
    created_at: datetime
    archived_at: datetime | None
    statuses: tuple[AlertStatus, ...]


async def create_alert(
    conn: AsyncConnection,
    org_id: str,
    rule: AlertRule,
    now: datetime,
    *,
    actor: str,
    uniqueness_key: str | None = None,
) -> AlertRule:
    """Store a new alert rule of ``org_id`` (its id assigned here)."""
    stored = replace(rule, id=new_id("alert"))
    validate_rule(stored)
    if stored.customer_id is not None:
        await check_customer(conn, org_id, stored.customer_id)
    metric_id = stored.billable_metric_id
    if metric_id is not None and not await list_metrics(conn, org_id, metric_id=metric_id):
        raise NotFoundError(f"no billable metric {rule.billable_metric_id!r}", "billable_metric_id")
    await claim_uniqueness_key(conn, org_id, "alert", uniqueness_key, stored.id)
    await conn.execute(
        alerts.insert().values(
            id=stored.id,
            org_id=org_id,
            customer_id=stored.customer_id,
            document=to_json(stored),
            created_by=actor,
            created_at=now,
        )
    )
    return stored


async def archive_alert(
    conn: AsyncConnection, org_id: str, alert_id: str, now: datetime, customer_id: str | None
) -> bool:
    """Archive a live alert of ``org_id`` (restricted to ``customer_id``'s own alerts when
    given); False if there is none."""
    query = update(alerts).where(
        (alerts.c.id == alert_id) & (alerts.c.org_id == org_id) & alerts.c.archived_at.is_(None)
    )
    if customer_id is not None:
        query = query.where(alerts.c.customer_id == customer_id)
    return bool((await conn.execute(query.values(archived_at=now))).rowcount)


async def alerts_of(
    conn: AsyncConnection,
    org_id: str,
    *,
    alert_id: str | None = None,
    include_archived: bool = False,
) -> list[AlertRecord]:
    """The organization's alerts (or the one ``alert_id``) with every state, oldest first."""
    query = select(alerts).where(alerts.c.org_id == org_id)
    if alert_id is not None:
        query = query.where(alerts.c.id == alert_id)
    if not include_archived:
        query = query.where(alerts.c.archived_at.is_(None))
    rows = list(await conn.execute(query.order_by(alerts.c.created_at, alerts.c.id)))
    found = await _statuses(conn, org_id, [row.id for row in rows], None)
    return [_record(row, found.get(row.id, [])) for row in rows]


async def alerts_of_customers(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str]
) -> dict[str, list[AlertRecord]]:
    """Per customer: the live alerts watching it (its own and the organization-wide
    ones) with its states only, oldest first (two queries for any number of customers)."""
    wanted = sorted(set(customer_ids))
    query = select(alerts).where(
        (alerts.c.org_id == org_id)
        & alerts.c.archived_at.is_(None)
        & or_(alerts.c.customer_id.in_(wanted), alerts.c.customer_id.is_(None))
    )
    rows = list(await conn.execute(query.order_by(alerts.c.created_at, alerts.c.id)))
    found = await _statuses(conn, org_id, [row.id for row in rows], wanted)
    return {
        customer_id: [
            _record(row, [s for s in found.get(row.id, []) if s.customer_id == customer_id])
            for row in rows
            if row.customer_id in (None, customer_id)
        ]
        for customer_id in customer_ids
    }


def _record(row: Any, statuses: list[AlertStatus]) -> AlertRecord:
    return AlertRecord(
        decode(AlertRule, row.document), row.created_at, row.archived_at, tuple(statuses)
    )


async def _statuses(
    conn: AsyncConnection, org_id: str, alert_ids: list[str], customer_ids: list[str] | None
) -> dict[str, list[AlertStatus]]:
    found: dict[str, list[AlertStatus]] = {}
    if not alert_ids:
        return found
    query = select(states).where(
        (states.c.org_id == org_id)
        & states.c.alert_id.in_(alert_ids)
        & (states.c.group_hash != EVALUATED)
    )
    if customer_ids is not None:
        query = query.where(states.c.customer_id.in_(customer_ids))
    for s in await conn.execute(query.order_by(states.c.customer_id, states.c.group_json)):
        found.setdefault(s.alert_id, []).append(
            AlertStatus(
                s.alert_id,
                s.customer_id,
                parse_group_json(s.group_json),
                AlertState(s.state),
                s.latched,
            )
        )
    return found


async def save_statuses(
    conn: AsyncConnection, org_id: str, statuses: Sequence[AlertStatus], now: datetime
) -> None:
    """Store the state of each (alert, customer, group values), replacing the old one."""
    if not statuses:
        return
    rows = []
    for s in statuses:
        gjson = group_json(s.group)
        rows.append(
            {
                "org_id": org_id,
                "alert_id": s.alert_id,
                "customer_id": s.customer_id,
                "group_hash": digest(gjson),
                "group_json": gjson,
                "state": s.state.value,
                "latched": s.latched,
                "updated_at": now,
            }
        )
    insert = dialect.insert(conn, states)
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["org_id", "alert_id", "customer_id", "group_hash"],
            set_={
                "state": insert.excluded.state,
                "latched": insert.excluded.latched,
                "updated_at": insert.excluded.updated_at,
            },
        ),
        rows,
    )


async def reset_statuses(
    conn: AsyncConnection, org_id: str, alert_id: str, customer_id: str, now: datetime
) -> None:
    """Put every state of (alert, customer) back to ``evaluating`` (not latched), so the
    next evaluation notifies on any group over its threshold."""
    await conn.execute(
        update(states)
        .where(
            (states.c.org_id == org_id)
            & (states.c.alert_id == alert_id)
            & (states.c.customer_id == customer_id)
        )
        .values(state=AlertState.EVALUATING.value, latched=False, updated_at=now)
    )


async def evaluated_alerts(conn: AsyncConnection, org_id: str, customer_id: str) -> set[str]:
    """The alerts already evaluated for the customer at least once."""
    query = select(states.c.alert_id).where(
        (states.c.org_id == org_id)
        & (states.c.customer_id == customer_id)
        & (states.c.group_hash == EVALUATED)
    )
    return {alert_id for (alert_id,) in await conn.execute(query)}


async def mark_alerts_evaluated(
    conn: AsyncConnection, org_id: str, customer_id: str, alert_ids: Sequence[str], now: datetime
) -> None:
    if alert_ids:
        insert = dialect.insert(conn, states).on_conflict_do_nothing()
        await conn.execute(
            insert,
            [
                {
                    "org_id": org_id,
                    "alert_id": alert_id,
                    "customer_id": customer_id,
                    "group_hash": EVALUATED,
                    "group_json": "",
                    "state": AlertState.EVALUATING.value,
                    "latched": False,
                    "updated_at": now,
                }
                for alert_id in alert_ids
            ],
        )


async def watched_customers(
    conn: AsyncConnection, org_id: str, customer_ids: Sequence[str]
) -> list[str]:
    """The customers among ``customer_ids`` that a live alert watches (their own or an
    organization-wide one), in one read."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return []
    query = select(alerts.c.customer_id).where(
        (alerts.c.org_id == org_id)
        & alerts.c.archived_at.is_(None)
        & or_(alerts.c.customer_id.in_(wanted), alerts.c.customer_id.is_(None))
    )
    owners = {owner for (owner,) in await conn.execute(query.distinct())}
    return wanted if None in owners else [c for c in wanted if c in owners]
