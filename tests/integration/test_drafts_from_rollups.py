"""Drafts are assembled from rollups through the store: scenario 01's numbers, and a
contract whose period starts mid-hour (raw-event edges)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.catalog import (
    ConversionOperation,
    PriceSpec,
    Product,
    ProductType,
    QuantityConversion,
    Rate,
    RateType,
)
from billing.contracts import Contract, RecurringCredit
from billing.errors import ConflictError, NotFoundError, ValidationError
from billing.invoices import LineType
from billing.metering import AggregationType, EventTypeFilter, MetricDefinition, PropertyFilter
from billing.periods import BillingFrequency
from models.drafts import customer_drafts
from models.store.catalog import create_product, create_rate_card
from models.store.contracts import create_contract
from models.store.customers import create_customer
from models.store.metrics import create_metric
from tests.conftest import Env

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
GRACE = timedelta(hours=24)


async def llm_setup(env: Env, contract_start: datetime = MARCH) -> tuple[str, str]:
    now = env.clock()
    async with env.write() as conn:
        metric_id = await create_metric(
            conn,
            env.org_id,
            MetricDefinition(
                id="",
                name="Input tokens",
                aggregation_type=AggregationType.SUM,
                event_type_filter=EventTypeFilter(in_values=("llm_request",)),
                property_filters=(
                    PropertyFilter("model", exists=True),
                    PropertyFilter("input_tokens", exists=True),
                ),
                aggregation_key="input_tokens",
                group_keys=(("model",),),
            ),
            now,
        )
        product = await create_product(
            conn,
            env.org_id,
            Product(
                id="",
                name="Input tokens",
                type=ProductType.USAGE,
                billable_metric_id=metric_id,
                pricing_group_key=("model",),
                quantity_conversion=QuantityConversion(
                    Decimal(1_000_000), ConversionOperation.DIVIDE
                ),
            ),
            now,
            uniqueness_key="p_in",
        )
        card = await create_rate_card(
            conn,
            env.org_id,
            "Standard",
            "USD",
            [
                Rate(
                    product.id,
                    datetime(2026, 1, 1, tzinfo=UTC),
                    PriceSpec(RateType.FLAT, price=Decimal(price)),
                    pricing_group_values=(("model", model),),
                )
                for model, price in (("gpt-5", "1.50"), ("gpt-5-mini", "0.30"))
            ],
            now,
        )
        customer_id = await create_customer(
            conn, env.org_id, "Bem", now, ingest_aliases=["bem-internal-42"]
        )
        await create_contract(
            conn,
            env.org_id,
            Contract(
                id="",
                customer_id=customer_id,
                rate_card_id=card.id,
                starting_at=contract_start,
                recurring_credits=(
                    RecurringCredit(
                        "free",
                        "Free tier",
                        Decimal("9.00"),
                        BillingFrequency.MONTHLY,
                        contract_start,
                    ),
                ),
            ),
            now,
            actor="test",
        )
    return customer_id, product.id


def llm_event(tx: str, at: str, model: str, tokens: str) -> dict[str, object]:
    return {
        "transaction_id": tx,
        "customer_id": "bem-internal-42",
        "event_type": "llm_request",
        "timestamp": at,
        "properties": {"model": model, "input_tokens": tokens},
    }


async def test_scenario_01_draft_comes_from_rollups(env: Env) -> None:
    env.clock.set(datetime(2026, 3, 20, 12, tzinfo=UTC))
    customer_id, product_id = await llm_setup(env)
    events = [
        llm_event("t1", "2026-03-02T10:00:00Z", "gpt-5", "2000000"),
        llm_event("t2", "2026-03-05T10:00:00Z", "gpt-5", "1500000"),
        llm_event("t3", "2026-03-06T10:00:00Z", "gpt-5", "500000"),
        llm_event("t4", "2026-03-07T10:00:00Z", "gpt-5-mini", "3000000"),
        llm_event("t5", "2026-03-08T10:00:00Z", "gpt-5-mini", "2000000"),
        llm_event("t6", "2026-03-09T10:00:00Z", "gpt5", "1000000"),
    ]
    assert (await env.ingest(events)).json()["accepted"] == 6
    async with env.read() as conn:
        (drafts,) = await customer_drafts(conn, env.org_id, customer_id, env.clock(), GRACE)
    (invoice,) = drafts.invoices
    usage = {
        dict(line.group)["model"]: line for line in invoice.lines if line.type is LineType.USAGE
    }
    assert (usage["gpt-5"].quantity, usage["gpt-5"].amount) == (Decimal(4), Decimal("6.00"))
    assert (usage["gpt-5-mini"].quantity, usage["gpt-5-mini"].amount) == (
        Decimal(5),
        Decimal("1.50"),
    )
    credit = [line for line in invoice.lines if line.type is LineType.CREDIT_APPLIED]
    assert [line.amount for line in credit] == [Decimal("-7.50")]
    assert (invoice.subtotal, invoice.total) == (Decimal("7.50"), Decimal("0.00"))
    assert [(u.product_id, dict(u.group), u.quantity) for u in invoice.unrated_usage] == [
        (product_id, {"model": "gpt5"}, Decimal(1))
    ]


async def test_a_period_starting_mid_hour_counts_only_its_own_events(env: Env) -> None:
    start = datetime(2026, 3, 10, 10, 30, tzinfo=UTC)
    env.clock.set(datetime(2026, 3, 20, tzinfo=UTC))
    customer_id, _ = await llm_setup(env, contract_start=start)
    events = [
        llm_event("before", "2026-03-10T10:10:00Z", "gpt-5", "1000000"),
        llm_event("after", "2026-03-10T10:40:00Z", "gpt-5", "2000000"),
        llm_event("later", "2026-03-12T00:00:00Z", "gpt-5", "4000000"),
    ]
    assert (await env.ingest(events)).json()["accepted"] == 3
    async with env.read() as conn:
        (drafts,) = await customer_drafts(conn, env.org_id, customer_id, env.clock(), GRACE)
    (line,) = [x for x in drafts.invoices[0].lines if x.type is LineType.USAGE]
    assert line.quantity == Decimal(6)


async def test_catalog_errors_are_typed(env: Env) -> None:
    await llm_setup(env)
    async with env.write() as conn:
        with pytest.raises(ConflictError):
            await create_product(
                conn,
                env.org_id,
                Product("", "Again", ProductType.FIXED),
                env.clock(),
                uniqueness_key="p_in",
            )
    async with env.write() as conn:
        with pytest.raises(NotFoundError, match="billable_metric_id"):
            await create_product(
                conn,
                env.org_id,
                Product("", "Usage", ProductType.USAGE, billable_metric_id="bm_missing"),
                env.clock(),
            )
    async with env.write() as conn:
        with pytest.raises(ValidationError) as raised:
            await create_rate_card(conn, env.org_id, "Bad", "XXX", [], env.clock())
        assert raised.value.field == "currency"


async def test_another_organization_cannot_use_this_catalog(env: Env) -> None:
    customer_id, _ = await llm_setup(env)
    other_org, _ = await env.new_org("Other")
    async with env.read() as conn:
        assert await customer_drafts(conn, other_org, customer_id, env.clock(), GRACE) == []
    async with env.write() as conn:
        with pytest.raises(NotFoundError):
            await create_contract(
                conn,
                other_org,
                Contract(id="", customer_id=customer_id, rate_card_id="rc_x", starting_at=MARCH),
                env.clock(),
                actor="test",
            )
