from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from billing.alerts import (
    AlertRule,
    AlertState,
    AlertStatus,
    AlertType,
    CustomerSnapshot,
    Notification,
    evaluate,
    validate_rule,
)
from billing.contracts import Commit, CommitType, Credit
from billing.drawdown import balance_views, contract_segments
from billing.errors import NotFoundError, ValidationError
from billing.invoicing import assemble
from billing.metering import GroupValues
from billing.periods import Period
from tests.unit.billing.builders import (
    APRIL,
    MARCH,
    METRIC,
    D,
    at,
    card,
    context,
    contract,
    flat,
    partial,
    rate,
    usage_product,
)

NOW = at(2026, 3, 20)
PERIOD = Period(MARCH, APRIL)
K = contract(
    credits=(Credit("cr", "Credit", D(20), MARCH, APRIL),),
    commits=(Commit("cm", "Commit", "pc", CommitType.PREPAID, D(50), MARCH, APRIL),),
)


def snapshot(*usage: tuple[str, str]) -> CustomerSnapshot:
    partials = [partial(amount, user) for user, amount in usage]
    ctx = context(K, card(rate("p", flat("1"))), usage_product(presentation_group_key=("user",)))
    invoice = assemble(ctx, PERIOD, {"m": partials}, {})
    views = balance_views(contract_segments(K, APRIL), {}, invoice.deductions)
    return CustomerSnapshot("c", NOW, (invoice,), {"m": partials}, views)


def run(
    rule: AlertRule,
    snap: CustomerSnapshot,
    states: Mapping[GroupValues, AlertStatus] | None = None,
    on_create: bool = False,
) -> dict[GroupValues, tuple[AlertState, Notification | None, Decimal]]:
    return {
        t.status.group: (t.status.state, t.notification, t.value)
        for t in evaluate(rule, snap, {"m": METRIC}, states or {}, on_create)
    }


def states_of(
    rule: AlertRule, snap: CustomerSnapshot, on_create: bool = False
) -> dict[GroupValues, AlertStatus]:
    return {t.status.group: t.status for t in evaluate(rule, snap, {"m": METRIC}, {}, on_create)}


U1 = (("user", "u1"),)
U2 = (("user", "u2"),)


def test_usage_threshold_counts_metric_quantity_optionally_per_group() -> None:
    rule = AlertRule("a", "usage", AlertType.USAGE_THRESHOLD_REACHED, D(10), billable_metric_id="m")
    assert run(rule, snapshot(("u1", "4"), ("u2", "6")))[()] == (
        AlertState.IN_ALARM,
        Notification.TRIGGERED,
        D(10),
    )
    scoped = AlertRule(
        "a",
        "usage",
        AlertType.USAGE_THRESHOLD_REACHED,
        D(10),
        billable_metric_id="m",
        group_values=U2,
    )
    assert run(scoped, snapshot(("u1", "40"), ("u2", "6")))[U2] == (AlertState.OK, None, D(6))
    with pytest.raises(NotFoundError):
        run(
            AlertRule("a", "u", AlertType.USAGE_THRESHOLD_REACHED, D(1), billable_metric_id="x"),
            snapshot(),
        )


def test_spend_per_group_key_alarms_only_the_group_over_budget() -> None:
    rule = AlertRule("a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(100), group_key="user")
    result = run(rule, snapshot(("u1", "120"), ("u2", "30")))
    assert result[U1][:2] == (AlertState.IN_ALARM, Notification.TRIGGERED)
    assert result[U2][:2] == (AlertState.OK, None)


def test_spend_is_before_credits_and_can_target_one_group() -> None:
    total = AlertRule("a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(25))
    assert run(total, snapshot(("u1", "15"), ("u2", "10")))[()][0] is AlertState.IN_ALARM
    one = AlertRule("a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(15), group_values=U1)
    assert run(one, snapshot(("u1", "15"), ("u2", "10")))[U1] == (
        AlertState.IN_ALARM,
        Notification.TRIGGERED,
        D("15.00"),
    )


def test_invoice_total_is_after_credits_and_commits() -> None:
    rule = AlertRule("a", "total", AlertType.INVOICE_TOTAL_REACHED, D(60))
    # 75 usage + 50 commit purchase - 20 credit - 50 commit drawn
    assert run(rule, snapshot(("u1", "75")))[()] == (AlertState.OK, None, D("55.00"))
    assert run(rule, snapshot(("u1", "80")))[()][0] is AlertState.IN_ALARM


def test_low_balance_alerts_look_at_remaining_after_drafts() -> None:
    credit = AlertRule("a", "low", AlertType.LOW_CREDIT_BALANCE_REACHED, D(5))
    commit = AlertRule("b", "low", AlertType.LOW_COMMIT_BALANCE_REACHED, D(5))
    assert run(credit, snapshot(("u1", "10")))[()] == (AlertState.OK, None, D(10))
    assert run(credit, snapshot(("u1", "16")))[()][0] is AlertState.IN_ALARM
    assert run(commit, snapshot(("u1", "60")))[()] == (AlertState.OK, None, D(10))
    no_balance = CustomerSnapshot("c", NOW)
    assert run(credit, no_balance)[()] == (AlertState.IN_ALARM, Notification.TRIGGERED, D(0))


def test_transitions_notify_once_each_way() -> None:
    rule = AlertRule("a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(100), group_key="user")
    alarmed = states_of(rule, snapshot(("u1", "120")))
    assert run(rule, snapshot(("u1", "125")), alarmed)[U1][:2] == (AlertState.IN_ALARM, None)
    # a new period: u1 has no spend any more, so it resolves
    assert run(rule, snapshot(), alarmed)[U1] == (AlertState.OK, Notification.RESOLVED, D(0))
    ok = states_of(rule, snapshot(("u1", "50")))
    assert run(rule, snapshot(("u1", "60")), ok)[U1][:2] == (AlertState.OK, None)
    assert run(rule, snapshot(("u1", "150")), ok)[U1][:2] == (
        AlertState.IN_ALARM,
        Notification.TRIGGERED,
    )


def test_evaluate_on_create_false_latches_until_a_new_crossing() -> None:
    rule = AlertRule(
        "a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(100), evaluate_on_create=False
    )
    created = states_of(rule, snapshot(("u1", "120")), on_create=True)
    assert created[()].state is AlertState.OK and created[()].latched
    assert run(rule, snapshot(("u1", "130")), created)[()][:2] == (AlertState.OK, None)
    released = states_of(rule, snapshot(("u1", "10")))
    assert not released[()].latched
    assert run(rule, snapshot(("u1", "130")), released)[()][:2] == (
        AlertState.IN_ALARM,
        Notification.TRIGGERED,
    )
    below = {
        t.status.group: t.status
        for t in evaluate(rule, snapshot(("u1", "10")), {"m": METRIC}, created)
    }
    assert below[()] == AlertStatus("a", "c", (), AlertState.OK, latched=False)


def test_reset_evaluates_from_scratch_and_may_notify_again() -> None:
    rule = AlertRule("a", "spend", AlertType.SPEND_THRESHOLD_REACHED, D(100))
    assert run(rule, snapshot(("u1", "120")), {})[()][1] is Notification.TRIGGERED


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (AlertRule("a", "n", AlertType.USAGE_THRESHOLD_REACHED, D(1)), "billable_metric_id"),
        (AlertRule("a", "n", AlertType.INVOICE_TOTAL_REACHED, D(1), group_key="u"), "group_key"),
        (
            AlertRule(
                "a", "n", AlertType.SPEND_THRESHOLD_REACHED, D(1), group_key="u", group_values=U1
            ),
            "group_values",
        ),
    ],
)
def test_rule_validation_names_the_field(rule: AlertRule, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        validate_rule(rule)
    assert error.value.field == field
    validate_rule(AlertRule("a", "n", AlertType.SPEND_THRESHOLD_REACHED, D(1), group_key="u"))
