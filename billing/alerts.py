"""Alert evaluation (SPEC §7): measure a customer against a rule, then move each
(alert, customer, group values) state and say which transitions notify.

States: ``evaluating`` (never evaluated) -> ``ok`` | ``in_alarm``. ``alert.triggered`` is
due on every move into ``in_alarm``, ``alert.resolved`` on every move from ``in_alarm`` back
to ``ok``; nothing else notifies. With ``evaluate_on_create: false``, a group already over
the threshold at the alert's creation starts ``ok`` and *latched*: it notifies only after it
has first dropped below the threshold and crossed again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing.drawdown import BalanceKind, BalanceView
from billing.errors import NotFoundError, ValidationError
from billing.invoices import Invoice, LineType
from billing.metering import GroupValues, MetricDefinition, aggregate
from billing.money import ZERO, exact
from billing.usage_lines import Partials


class AlertType(StrEnum):
    USAGE_THRESHOLD_REACHED = "usage_threshold_reached"
    SPEND_THRESHOLD_REACHED = "spend_threshold_reached"
    INVOICE_TOTAL_REACHED = "invoice_total_reached"
    LOW_CREDIT_BALANCE_REACHED = "low_credit_balance_reached"
    LOW_COMMIT_BALANCE_REACHED = "low_commit_balance_reached"


LOW_BALANCE_KINDS: dict[AlertType, frozenset[BalanceKind]] = {
    AlertType.LOW_CREDIT_BALANCE_REACHED: frozenset({BalanceKind.CREDIT}),
    AlertType.LOW_COMMIT_BALANCE_REACHED: frozenset({BalanceKind.PREPAID_COMMIT}),
}


class AlertState(StrEnum):
    EVALUATING = "evaluating"
    OK = "ok"
    IN_ALARM = "in_alarm"


class Notification(StrEnum):
    TRIGGERED = "alert.triggered"
    RESOLVED = "alert.resolved"


@dataclass(frozen=True)
class AlertRule:
    """An alert. ``customer_id`` None: every customer. ``billable_metric_id`` is for usage
    alerts; ``group_key`` (spend only) evaluates every value of that key separately;
    ``group_values`` restricts usage/spend to one group."""

    id: str
    name: str
    alert_type: AlertType
    threshold: Decimal
    customer_id: str | None = None
    billable_metric_id: str | None = None
    group_key: str | None = None
    group_values: GroupValues | None = None
    evaluate_on_create: bool = True


@dataclass(frozen=True)
class AlertStatus:
    """The stored state of one (alert, customer, group values)."""

    alert_id: str
    customer_id: str
    group: GroupValues
    state: AlertState
    latched: bool = False


@dataclass(frozen=True)
class AlertTransition:
    """The outcome of evaluating one (alert, customer, group values): the new status,
    the measured value, and the notification due (None when the state did not move)."""

    previous: AlertState
    status: AlertStatus
    value: Decimal
    notification: Notification | None


@dataclass(frozen=True)
class CustomerSnapshot:
    """What alerts look at for one customer at ``now``: the drafts of its open periods
    (one per contract in force), the rollup partials of the open period per metric id, and
    its balance segments with what open drafts would draw."""

    customer_id: str
    now: datetime
    invoices: Sequence[Invoice] = ()
    usage: Mapping[str, Partials] = field(default_factory=dict)
    balances: Sequence[BalanceView] = ()


def validate_rule(rule: AlertRule) -> None:
    """Raise ``ValidationError`` naming the field a rule of its type needs or forbids."""
    if rule.alert_type is AlertType.USAGE_THRESHOLD_REACHED and rule.billable_metric_id is None:
        raise ValidationError("billable_metric_id", "is required for usage_threshold_reached")
    if rule.group_key is not None and rule.alert_type is not AlertType.SPEND_THRESHOLD_REACHED:
        raise ValidationError("group_key", "is only allowed for spend_threshold_reached")
    if rule.group_key is not None and rule.group_values is not None:
        raise ValidationError("group_values", "cannot be combined with group_key")


def _matches(group: GroupValues, wanted: GroupValues) -> bool:
    return set(wanted) <= set(group)


def _spend(rule: AlertRule, snapshot: CustomerSnapshot) -> dict[GroupValues, Decimal]:
    spend: dict[GroupValues, Decimal] = {}
    for invoice in snapshot.invoices:
        for line in invoice.lines:
            if line.type is not LineType.USAGE:
                continue
            if rule.group_key is not None:
                values = dict(line.group)
                if rule.group_key not in values:
                    continue
                key: GroupValues = ((rule.group_key, values[rule.group_key]),)
            elif rule.group_values is not None:
                if not _matches(line.group, rule.group_values):
                    continue
                key = rule.group_values
            else:
                key = ()
            spend[key] = spend.get(key, ZERO) + line.amount
    return spend


@exact
def measure(
    rule: AlertRule, snapshot: CustomerSnapshot, metrics: Mapping[str, MetricDefinition]
) -> dict[GroupValues, Decimal]:
    """The value the rule compares with its threshold, per group values (``()`` when the
    rule is not grouped).

    - usage: the metric's quantity over the open period (of ``group_values`` if given).
    - spend: usage line amounts of the open drafts, before credits (per ``group_key``
      value, or of the lines matching ``group_values``).
    - invoice total: the sum of the open drafts' totals (after credits).
    - low credit / low commit balance: the remaining-after-drafts of every credit /
      prepaid commit segment live at ``now``; no balance counts as 0.
    """
    kind = rule.alert_type
    if kind is AlertType.USAGE_THRESHOLD_REACHED:
        metric = metrics.get(rule.billable_metric_id or "")
        if metric is None:
            raise NotFoundError(f"billable metric {rule.billable_metric_id!r} not found")
        wanted = rule.group_values or ()
        quantities = aggregate(metric, snapshot.usage.get(metric.id, ()), [k for k, _ in wanted])
        return {wanted: quantities.get(wanted, ZERO)}
    if kind is AlertType.SPEND_THRESHOLD_REACHED:
        spend = _spend(rule, snapshot)
        return (
            spend
            if rule.group_key is not None
            else {rule.group_values or (): sum(spend.values(), ZERO)}
        )
    if kind is AlertType.INVOICE_TOTAL_REACHED:
        return {(): sum((invoice.total for invoice in snapshot.invoices), ZERO)}
    kinds = LOW_BALANCE_KINDS[kind]
    remaining = sum(
        (
            view.remaining_after_drafts
            for view in snapshot.balances
            if view.segment.kind in kinds and view.segment.live_at(snapshot.now)
        ),
        ZERO,
    )
    return {(): remaining}


def _reached(rule: AlertRule, value: Decimal) -> bool:
    if rule.alert_type in LOW_BALANCE_KINDS:
        return value <= rule.threshold
    return value >= rule.threshold


def _next(
    rule: AlertRule, previous: AlertStatus | None, reached: bool, on_create: bool
) -> tuple[AlertState, bool]:
    state = AlertState.EVALUATING if previous is None else previous.state
    if state is AlertState.EVALUATING:
        if reached and on_create and not rule.evaluate_on_create:
            return AlertState.OK, True
        return (AlertState.IN_ALARM if reached else AlertState.OK), False
    if state is AlertState.IN_ALARM:
        return (AlertState.IN_ALARM if reached else AlertState.OK), False
    latched = previous is not None and previous.latched
    if latched:
        return AlertState.OK, reached
    return (AlertState.IN_ALARM if reached else AlertState.OK), False


@exact
def evaluate(
    rule: AlertRule,
    snapshot: CustomerSnapshot,
    metrics: Mapping[str, MetricDefinition],
    states: Mapping[GroupValues, AlertStatus],
    on_create: bool = False,
) -> tuple[AlertTransition, ...]:
    """Evaluate ``rule`` for ``snapshot``'s customer against the stored ``states`` (per
    group values). Every group measured now or stored before is evaluated (a stored group
    not measured now counts 0: e.g. a new period). ``on_create`` is True only for the
    evaluation made when the alert is created; ``reset_alert`` is ``evaluate`` with empty
    ``states`` (so it may notify again). Returns one transition per group, sorted by group.
    """
    values = measure(rule, snapshot, metrics)
    transitions: list[AlertTransition] = []
    for group in sorted(set(values) | set(states)):
        value = values.get(group, ZERO)
        previous = states.get(group)
        previous_state = AlertState.EVALUATING if previous is None else previous.state
        state, latched = _next(rule, previous, _reached(rule, value), on_create)
        notification = None
        if state is not previous_state and state is AlertState.IN_ALARM:
            notification = Notification.TRIGGERED
        elif previous_state is AlertState.IN_ALARM and state is AlertState.OK:
            notification = Notification.RESOLVED
        status = AlertStatus(rule.id, snapshot.customer_id, group, state, latched)
        transitions.append(AlertTransition(previous_state, status, value, notification))
    return tuple(transitions)
