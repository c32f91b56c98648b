"""Alerts (SPEC §7): thresholds on usage, spend, invoice totals and balances."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from schema.enums import AlertState, AlertType


@strawberry.type
class AlertStatus:
    customer_id: strawberry.ID
    group: JSON
    state: AlertState


@strawberry.type
class Alert:
    id: strawberry.ID
    name: str
    alert_type: AlertType
    threshold: Decimal
    customer_id: strawberry.ID | None
    billable_metric_id: strawberry.ID | None
    group_key: str | None
    group_values: JSON | None
    evaluate_on_create: bool
    archived_at: datetime | None
    statuses: list[AlertStatus] = strawberry.field(
        description="State per (customer, group value); none yet means `evaluating`."
    )


@strawberry.input
class CreateAlertInput:
    name: str
    alert_type: AlertType
    threshold: Decimal
    customer_id: strawberry.ID | None = None
    billable_metric_id: strawberry.ID | None = None
    group_key: str | None = None
    group_values: JSON | None = None
    evaluate_on_create: bool = True
    uniqueness_key: str | None = None
