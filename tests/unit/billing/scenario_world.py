"""Builds the pure core's inputs from a shared scenario file and plays its steps.

This stands in for storage and jobs: events are validated with ``billing.events``, matched
with ``billing.metering`` and kept with their arrival time; drafts, finalization, balances
and alerts come from the core alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.alerts import AlertRule, AlertStatus, AlertType, CustomerSnapshot, evaluate
from billing.catalog import (
    ConversionOperation,
    PriceSpec,
    Product,
    ProductType,
    QuantityConversion,
    QuantityRounding,
    Rate,
    RateCard,
    RateType,
    RoundingMethod,
    Tier,
    TierMode,
)
from billing.contracts import (
    Commit,
    CommitType,
    Contract,
    Credit,
    Override,
    OverrideType,
    QuantityChange,
    RecurringCredit,
    ScheduledCharge,
    Subscription,
)
from billing.drawdown import LedgerEntry, balance_views, contract_segments
from billing.events import Rejection, parse_rfc3339, validate_event
from billing.invoices import Invoice
from billing.invoicing import BillingContext, Usage, assemble_open, finalize
from billing.metering import (
    AggregationType,
    EventTypeFilter,
    GroupValues,
    MetricDefinition,
    PropertyFilter,
    RollupPartial,
    UsageEvent,
    match_event,
)
from billing.periods import BillingAnchor, BillingFrequency, Period, counts_toward, periods

GRACE = timedelta(hours=24)
Raw = Mapping[str, Any]


def ts(text: str) -> datetime:
    parsed = parse_rfc3339(text)
    assert parsed is not None, text
    return parsed


def dec(raw: Raw, key: str) -> Decimal | None:
    return Decimal(str(raw[key])) if key in raw else None


def groups(raw: Mapping[str, str] | None) -> GroupValues:
    return tuple(sorted((raw or {}).items()))


def _tuple(raw: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(raw)


def metric_of(raw: Raw) -> MetricDefinition:
    etf = raw.get("event_type_filter", {})
    return MetricDefinition(
        id=raw["ref"],
        name=raw["name"],
        aggregation_type=AggregationType(raw["aggregation_type"]),
        event_type_filter=EventTypeFilter(
            _tuple(etf.get("in_values")), _tuple(etf.get("not_in_values"))
        ),
        property_filters=tuple(
            PropertyFilter(
                pf["name"],
                pf.get("exists"),
                _tuple(pf.get("in_values")),
                _tuple(pf.get("not_in_values")),
            )
            for pf in raw.get("property_filters", [])
        ),
        aggregation_key=raw.get("aggregation_key"),
        group_keys=tuple(tuple(key) for key in raw.get("group_keys", [])),
    )


def product_of(raw: Raw) -> Product:
    conversion = raw.get("quantity_conversion")
    rounding = raw.get("quantity_rounding")
    return Product(
        id=raw["ref"],
        name=raw["name"],
        type=ProductType(raw["type"]),
        billable_metric_id=raw.get("billable_metric"),
        pricing_group_key=tuple(raw.get("pricing_group_key", [])),
        presentation_group_key=tuple(raw.get("presentation_group_key", [])),
        quantity_conversion=None
        if conversion is None
        else QuantityConversion(
            Decimal(conversion["conversion_factor"]), ConversionOperation(conversion["operation"])
        ),
        quantity_rounding=None
        if rounding is None
        else QuantityRounding(
            rounding["decimal_places"], RoundingMethod(rounding["rounding_method"])
        ),
        composite_product_ids=tuple(raw.get("composite_products", [])),
    )


def spec_of(raw: Raw) -> PriceSpec:
    return PriceSpec(
        rate_type=RateType(raw["rate_type"]),
        price=dec(raw, "price"),
        tiers=tuple(Tier(Decimal(t["price"]), dec(t, "size")) for t in raw.get("tiers", [])),
        tier_mode=TierMode(raw.get("tier_mode", "graduated")),
        package_size=dec(raw, "package_size"),
        fraction=dec(raw, "fraction"),
    )


def rate_card_of(raw: Raw) -> RateCard:
    rates = tuple(
        Rate(
            product_id=r["product"],
            starting_at=ts(r["starting_at"]),
            spec=spec_of(r),
            ending_before=ts(r["ending_before"]) if "ending_before" in r else None,
            entitled=r.get("entitled", True),
            pricing_group_values=groups(r.get("pricing_group_values")),
            id=f"{raw['ref']}/rate/{i}",
        )
        for i, r in enumerate(raw.get("rates", []))
    )
    return RateCard(raw["ref"], raw["name"], raw.get("currency", "USD"), rates)


def _opt_ts(raw: Raw, key: str) -> datetime | None:
    return ts(raw[key]) if key in raw else None


def _products(raw: Raw) -> frozenset[str] | None:
    return frozenset(raw["applicable_products"]) if "applicable_products" in raw else None


def contract_of(raw: Raw) -> Contract:
    ref = raw["ref"]
    return Contract(
        id=ref,
        customer_id=raw["customer"],
        rate_card_id=raw["rate_card"],
        starting_at=ts(raw["starting_at"]),
        ending_before=_opt_ts(raw, "ending_before"),
        billing_frequency=BillingFrequency(raw.get("billing_frequency", "monthly")),
        billing_anchor=BillingAnchor(raw.get("billing_anchor", "first_of_month")),
        overrides=tuple(
            Override(
                product_id=o["product"],
                starting_at=ts(o["starting_at"]),
                type=OverrideType(o["type"]),
                ending_before=_opt_ts(o, "ending_before"),
                pricing_group_values=groups(o["pricing_group_values"])
                if "pricing_group_values" in o
                else None,
                multiplier=dec(o, "multiplier"),
                overwrite_rate=spec_of(o["overwrite_rate"]) if "overwrite_rate" in o else None,
                priority=o.get("priority"),
                id=f"{ref}/override/{i}",
            )
            for i, o in enumerate(raw.get("overrides", []))
        ),
        credits=tuple(
            Credit(
                f"{ref}/credit/{i}",
                c["name"],
                Decimal(c["amount"]),
                ts(c["starting_at"]),
                ts(c["ending_before"]),
                c.get("priority"),
                _products(c),
            )
            for i, c in enumerate(raw.get("credits", []))
        ),
        recurring_credits=tuple(
            RecurringCredit(
                f"{ref}/recurring/{i}",
                c["name"],
                Decimal(c["amount"]),
                BillingFrequency(c.get("frequency", "monthly")),
                ts(c["starting_at"]),
                _opt_ts(c, "ending_before"),
                c.get("priority"),
                _products(c),
            )
            for i, c in enumerate(raw.get("recurring_credits", []))
        ),
        commits=tuple(
            Commit(
                f"{ref}/commit/{i}",
                c["name"],
                c["product"],
                CommitType(c["type"]),
                Decimal(c["amount"]),
                ts(c["starting_at"]),
                ts(c["ending_before"]),
                c.get("priority"),
                _products(c),
                _opt_ts(c, "invoice_at"),
            )
            for i, c in enumerate(raw.get("commits", []))
        ),
        subscriptions=tuple(
            Subscription(
                s["product"],
                tuple(
                    QuantityChange(ts(q["starting_at"]), Decimal(q["quantity"]))
                    for q in s["quantity_schedule"]
                ),
                s.get("proration", True),
                f"{ref}/subscription/{i}",
            )
            for i, s in enumerate(raw.get("subscriptions", []))
        ),
        scheduled_charges=tuple(
            ScheduledCharge(
                f"{ref}/scheduled/{i}",
                c["product"],
                ts(c["timestamp"]),
                Decimal(c["amount"]),
                c["name"],
            )
            for i, c in enumerate(raw.get("scheduled_charges", []))
        ),
    )


def alert_of(raw: Raw) -> AlertRule:
    return AlertRule(
        id=raw["ref"],
        name=raw["name"],
        alert_type=AlertType(raw["alert_type"]),
        threshold=Decimal(raw["threshold"]),
        customer_id=raw.get("customer"),
        billable_metric_id=raw.get("billable_metric"),
        group_key=raw.get("group_key"),
        group_values=groups(raw["group_values"]) if "group_values" in raw else None,
        evaluate_on_create=raw.get("evaluate_on_create", True),
    )


@dataclass(frozen=True)
class Stored:
    event: UsageEvent
    customer_id: str | None
    received_at: datetime


@dataclass
class World:
    """The state a scenario builds up: catalog, events, finalized invoices, ledgers."""

    metrics: dict[str, MetricDefinition]
    products: dict[str, Product]
    rate_cards: dict[str, RateCard]
    contracts: dict[str, Contract]
    aliases: dict[str, str]
    alerts: list[AlertRule]
    events: list[Stored] = field(default_factory=list)
    finalized: dict[tuple[str, datetime], Invoice] = field(default_factory=dict)
    ledgers: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    alert_states: dict[tuple[str, str], dict[GroupValues, AlertStatus]] = field(
        default_factory=dict
    )
    notifications: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, setup: Raw) -> World:
        customers = setup.get("customers", [])
        aliases = {c["ref"]: c["ref"] for c in customers}
        aliases.update({a: c["ref"] for c in customers for a in c.get("ingest_aliases", [])})
        return cls(
            metrics={m["ref"]: metric_of(m) for m in setup.get("billable_metrics", [])},
            products={p["ref"]: product_of(p) for p in setup.get("products", [])},
            rate_cards={r["ref"]: rate_card_of(r) for r in setup.get("rate_cards", [])},
            contracts={c["ref"]: contract_of(c) for c in setup.get("contracts", [])},
            aliases=aliases,
            alerts=[alert_of(a) for a in setup.get("alerts", [])],
        )

    def context(self, contract: Contract) -> BillingContext:
        return BillingContext(
            contract, self.rate_cards[contract.rate_card_id], self.products, self.metrics
        )

    def ingest(self, raws: Sequence[Raw], now: datetime) -> None:
        seen = {stored.event.transaction_id for stored in self.events}
        for raw in raws:
            raw = dict(raw)
            customer = raw.get("customer_id")
            if isinstance(customer, str) and customer.startswith("ref:"):
                raw["customer_id"] = customer[4:]
            event = validate_event(raw, now)
            if isinstance(event, Rejection) or event.transaction_id in seen:
                continue
            seen.add(event.transaction_id)
            self.events.append(Stored(event, self.aliases.get(event.customer_id), now))

    def usage(self, customer_id: str, period: Period, now: datetime) -> Usage:
        found: dict[str, list[tuple[GroupValues, RollupPartial]]] = {}
        for stored in self.events:
            if (
                stored.customer_id != customer_id
                or not counts_toward(period, stored.event.timestamp, stored.received_at, GRACE)
                or stored.received_at > now
            ):
                continue
            for metric in self.metrics.values():
                result = match_event(metric, stored.event)
                if result.partial is not None:
                    found.setdefault(metric.id, []).append((result.group_values, result.partial))
        return found

    def late_events(self, customer_id: str, period: Period) -> int:
        return sum(
            1
            for s in self.events
            if s.customer_id == customer_id
            and period.contains(s.event.timestamp)
            and s.received_at >= period.ending_before + GRACE
        )

    def open_periods(self, contract: Contract, now: datetime) -> list[Period]:
        return [
            p
            for p in periods(contract.schedule, now)
            if (contract.id, p.starting_at) not in self.finalized and p.starting_at <= now
        ]

    def drafts(self, contract: Contract, now: datetime) -> tuple[Invoice, ...]:
        windows = [
            (p, self.usage(contract.customer_id, p, now)) for p in self.open_periods(contract, now)
        ]
        return assemble_open(self.context(contract), windows, self.ledgers)

    def run_jobs(self, now: datetime) -> None:
        for contract in self.contracts.values():
            for period in self.open_periods(contract, now):
                if now < period.ending_before + GRACE:
                    continue
                invoice = self.drafts(contract, now)[0]
                assert invoice.starting_at == period.starting_at
                final, entries = finalize(invoice, f"{contract.id}@{period.starting_at}", now)
                self.finalized[(contract.id, period.starting_at)] = final
                for entry in entries:
                    self.ledgers.setdefault(entry.segment_id, []).append(entry)
                self.notifications.append({"type": "invoice.finalized", "contract": contract.id})
        self.evaluate_alerts(now)

    def views(self, customer_id: str, now: datetime) -> list[Any]:
        result = []
        for contract in self.contracts.values():
            if contract.customer_id != customer_id:
                continue
            pending = [d for inv in self.drafts(contract, now) for d in inv.deductions]
            result += balance_views(
                contract_segments(contract, now + timedelta(microseconds=1)), self.ledgers, pending
            )
        return result

    def snapshot(self, customer_id: str, now: datetime) -> CustomerSnapshot:
        current: list[Invoice] = []
        usage: Usage = {}
        for contract in self.contracts.values():
            if contract.customer_id != customer_id or not contract.in_force_at(now):
                continue
            drafts = self.drafts(contract, now)
            current += [d for d in drafts if d.starting_at <= now < d.ending_before]
            period = Period(current[-1].starting_at, current[-1].ending_before)
            usage = self.usage(customer_id, period, now)
        return CustomerSnapshot(customer_id, now, current, usage, self.views(customer_id, now))

    def evaluate_alerts(self, now: datetime) -> None:
        customers = {c.customer_id for c in self.contracts.values()}
        for rule in self.alerts:
            for customer_id in sorted(customers):
                if rule.customer_id not in (None, customer_id):
                    continue
                key = (rule.id, customer_id)
                on_create = key not in self.alert_states
                states = self.alert_states.setdefault(key, {})
                snapshot = self.snapshot(customer_id, now)
                for t in evaluate(rule, snapshot, self.metrics, states, on_create=on_create):
                    states[t.status.group] = t.status
                    if t.notification is not None:
                        self.notifications.append(
                            {
                                "type": t.notification.value,
                                "alert": rule.id,
                                "customer": customer_id,
                                "group": dict(t.status.group),
                            }
                        )
