"""``serve --demo``: a demo organization and an admin key that can also ingest."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

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
from billing.metering import AggregationType, EventTypeFilter, MetricDefinition, PropertyFilter
from billing.periods import BillingFrequency
from meterline.settings import Settings
from models.store.api_keys import (
    MAX_TOKEN_TTL,
    authenticate,
    create_api_key,
    create_customer_token,
)
from models.store.catalog import create_product, create_rate_card
from models.store.contracts import create_contract
from models.store.customers import create_customer, resolve_customers
from models.store.metrics import create_metric, list_metrics
from models.store.organizations import get_or_create_organization

DEMO_ORG = "Demo"
DEMO_ALIAS = "demo-customer"
MILLION = Decimal(1_000_000)


async def _seed_billing(conn: AsyncConnection, org_id: str, now: datetime) -> None:
    """Once per demo organization: an LLM-token metric priced per million tokens and per
    model, and a customer (alias ``demo-customer``) on a monthly contract with $9 of free
    usage a month, so events sent in the tour show up on a draft invoice."""
    if await list_metrics(conn, org_id, include_archived=True):
        return
    metric_id = await create_metric(
        conn,
        org_id,
        MetricDefinition(
            id="",
            name="Input tokens",
            aggregation_type=AggregationType.SUM,
            event_type_filter=EventTypeFilter(("llm_request",), None),
            property_filters=(
                PropertyFilter("model", True, None, None),
                PropertyFilter("input_tokens", True, None, None),
            ),
            aggregation_key="input_tokens",
            group_keys=(("model",),),
        ),
        now,
    )
    product = await create_product(
        conn,
        org_id,
        Product(
            id="",
            name="Input tokens (per million)",
            type=ProductType.USAGE,
            billable_metric_id=metric_id,
            pricing_group_key=("model",),
            quantity_conversion=QuantityConversion(MILLION, ConversionOperation.DIVIDE),
        ),
        now,
    )
    year_start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    card = await create_rate_card(
        conn,
        org_id,
        "Standard",
        "USD",
        [
            Rate(
                product.id,
                year_start,
                PriceSpec(RateType.FLAT, Decimal(price)),
                pricing_group_values=(("model", model),),
            )
            for model, price in (("gpt-5", "1.50"), ("gpt-5-mini", "0.30"))
        ],
        now,
    )
    customer_id = await create_customer(
        conn, org_id, "Demo customer", now, ingest_aliases=[DEMO_ALIAS]
    )
    month_start = year_start.replace(month=now.month)
    free = RecurringCredit("", "Free tier", Decimal("9.00"), BillingFrequency.MONTHLY, month_start)
    await create_contract(
        conn,
        org_id,
        Contract("", customer_id, card.id, month_start, recurring_credits=(free,)),
        now,
        actor="demo",
    )


def demo_key_file(settings: Settings) -> Path:
    return settings.redis_data_dir.parent / ".meterline-demo-key"


async def demo_customer_token(settings: Settings, clock: Callable[[], datetime]) -> str:
    """A customer token (valid a day) for the demo customer, for the embed demo page."""
    db = settings.database()
    try:
        async with db.write() as conn:
            org_id = await get_or_create_organization(conn, DEMO_ORG, clock())
            customer_id = (await resolve_customers(conn, org_id, [DEMO_ALIAS]))[DEMO_ALIAS]
            token, _ = await create_customer_token(
                conn, org_id, customer_id, MAX_TOKEN_TTL, clock(), actor="demo"
            )
    finally:
        await db.dispose()
    return token


async def seed_demo(settings: Settings, clock: Callable[[], datetime]) -> str:
    """Idempotent: reuses the demo key kept (mode 600) beside the database while it is valid."""
    key_file = demo_key_file(settings)
    db = settings.database()
    try:
        async with db.write() as conn:
            org_id = await get_or_create_organization(conn, DEMO_ORG, clock())
            await _seed_billing(conn, org_id, clock())
            if key_file.exists():
                kept = key_file.read_text().strip()
                principal = await authenticate(conn, kept, clock())
                if principal is not None and principal.org_id == org_id:
                    return kept
            _, secret = await create_api_key(
                conn, org_id, ["admin", "ingest"], clock(), name="demo"
            )
    finally:
        await db.dispose()
    key_file.write_text(secret + "\n")
    os.chmod(key_file, 0o600)
    return secret
