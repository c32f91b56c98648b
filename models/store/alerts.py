"""Alert rules (validated by the core) and their stored states."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.alerts import AlertRule, AlertState, AlertStatus, validate_rule
from billing.errors import NotFoundError
from models.alerts import AlertRow, AlertStateRow
from models.codec import decode, to_json
from models.ids import new_id
from models.store.customers import customers_by_id
from models.store.metrics import list_metrics
from models.store.rollups import parse_group_json
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

alerts = table(AlertRow)
states = table(AlertStateRow)


@dataclass(frozen=True)
class AlertRecord:
    rule: AlertRule
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
    customer = stored.customer_id
    if customer is not None and not await customers_by_id(conn, org_id, [customer]):
        raise NotFoundError(f"customer_id: no customer {customer!r}")
    metric_id = stored.billable_metric_id
    if metric_id is not None and not await list_metrics(conn, org_id, metric_id=metric_id):
        raise NotFoundError(f"billable_metric_id: no billable metric {rule.billable_metric_id!r}")
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
    customer_id: str | None = None,
    alert_id: str | None = None,
    include_archived: bool = False,
) -> list[AlertRecord]:
    """The organization's alerts (those watching ``customer_id``: its own and the
    organization-wide ones, with its states only), oldest first."""
    query = select(alerts).where(alerts.c.org_id == org_id)
    if customer_id is not None:
        query = query.where(
            or_(alerts.c.customer_id == customer_id, alerts.c.customer_id.is_(None))
        )
    if alert_id is not None:
        query = query.where(alerts.c.id == alert_id)
    if not include_archived:
        query = query.where(alerts.c.archived_at.is_(None))
    rows = list(await conn.execute(query.order_by(alerts.c.created_at, alerts.c.id)))
    found: dict[str, list[AlertStatus]] = {row.id: [] for row in rows}
    if rows:
        state_query = select(states).where(
            (states.c.org_id == org_id) & states.c.alert_id.in_(list(found))
        )
        if customer_id is not None:
            state_query = state_query.where(states.c.customer_id == customer_id)
        for s in await conn.execute(
            state_query.order_by(states.c.customer_id, states.c.group_json)
        ):
            found[s.alert_id].append(
                AlertStatus(
                    s.alert_id,
                    s.customer_id,
                    parse_group_json(s.group_json),
                    AlertState(s.state),
                    s.latched,
                )
            )
    return [
        AlertRecord(decode(AlertRule, row.document), row.archived_at, tuple(found[row.id]))
        for row in rows
    ]
