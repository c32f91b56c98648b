"""Products, rate cards and rates: validated by the billing core, stored as documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.catalog import Product, Rate, RateCard
from billing.errors import NotFoundError
from billing.money import minor_units
from billing.validation import validate_product, validate_rate
from models.catalog import ProductRow, RateCardRow, RateRow
from models.codec import decode, to_json
from models.ids import new_id
from models.store.metrics import active_metrics
from models.store.uniqueness import claim_uniqueness_key
from models.tables import table

products = table(ProductRow)
rate_cards = table(RateCardRow)
rates = table(RateRow)


async def create_product(
    conn: AsyncConnection,
    org_id: str,
    product: Product,
    now: datetime,
    uniqueness_key: str | None = None,
) -> Product:
    """Store a new product (its ``id`` is assigned here) after the core validated it."""
    stored = replace(product, id=new_id("prod"))
    metrics = {m.id: m for m in await active_metrics(conn, org_id)}
    validate_product(stored, metrics)
    known = await list_products(conn, org_id)
    missing = [p for p in stored.composite_product_ids if p not in {k.id for k in known}]
    if missing:
        raise NotFoundError(f"composite_product_ids: no product {missing[0]!r}")
    await claim_uniqueness_key(conn, org_id, "product", uniqueness_key, stored.id)
    await conn.execute(
        products.insert().values(
            id=stored.id,
            org_id=org_id,
            name=stored.name,
            type=stored.type.value,
            document=to_json(stored),
            created_at=now,
        )
    )
    return stored


async def list_products(conn: AsyncConnection, org_id: str) -> list[Product]:
    query = (
        select(products.c.document)
        .where((products.c.org_id == org_id) & products.c.archived_at.is_(None))
        .order_by(products.c.created_at, products.c.id)
    )
    return [decode(Product, doc) for doc in (await conn.execute(query)).scalars()]


async def create_rate_card(
    conn: AsyncConnection,
    org_id: str,
    name: str,
    currency: str,
    rate_list: Sequence[Rate],
    now: datetime,
    uniqueness_key: str | None = None,
) -> RateCard:
    minor_units(currency)
    card_id = new_id("rc")
    await claim_uniqueness_key(conn, org_id, "rate_card", uniqueness_key, card_id)
    await conn.execute(
        rate_cards.insert().values(
            id=card_id, org_id=org_id, name=name, currency=currency, created_at=now
        )
    )
    stored = await add_rates(conn, org_id, card_id, rate_list, now)
    return RateCard(id=card_id, name=name, currency=currency, rates=tuple(stored))


async def add_rates(
    conn: AsyncConnection, org_id: str, rate_card_id: str, rate_list: Sequence[Rate], now: datetime
) -> list[Rate]:
    """Validate and store rates (ids assigned here) on a rate card of ``org_id``."""
    currency = await conn.scalar(
        select(rate_cards.c.currency).where(
            (rate_cards.c.id == rate_card_id) & (rate_cards.c.org_id == org_id)
        )
    )
    if currency is None:
        raise NotFoundError(f"rate_card_id: no rate card {rate_card_id!r}")
    known = {p.id: p for p in await list_products(conn, org_id)}
    stored = []
    for index, rate in enumerate(rate_list):
        product = known.get(rate.product_id)
        if product is None:
            raise NotFoundError(f"rates[{index}].product_id: no product {rate.product_id!r}")
        stored.append(replace(rate, id=new_id("rate")))
        validate_rate(stored[-1], product, currency)
    if stored:
        await conn.execute(
            rates.insert(),
            [
                {
                    "id": rate.id,
                    "org_id": org_id,
                    "rate_card_id": rate_card_id,
                    "product_id": rate.product_id,
                    "document": to_json(rate),
                    "created_at": now,
                }
                for rate in stored
            ],
        )
    return stored


async def load_rate_card(conn: AsyncConnection, org_id: str, rate_card_id: str) -> RateCard:
    row = (
        await conn.execute(
            select(rate_cards).where(
                (rate_cards.c.id == rate_card_id) & (rate_cards.c.org_id == org_id)
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"rate_card_id: no rate card {rate_card_id!r}")
    query = select(rates.c.document).where(rates.c.rate_card_id == rate_card_id)
    found = [
        decode(Rate, d) for d in (await conn.execute(query.order_by(rates.c.created_at))).scalars()
    ]
    return RateCard(id=row.id, name=row.name, currency=row.currency, rates=tuple(found))
