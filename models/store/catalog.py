"""Products, rate cards and rates: validated by the billing core, stored as documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.catalog import Product, Rate, RateCard
from billing.errors import NotFoundError, ValidationError
from billing.money import minor_units
from billing.validation import validate_product, validate_rate
from models.catalog import ProductRow, RateCardRow, RateRow
from models.codec import decode, to_json
from models.ids import new_id
from models.store.metrics import active_metrics
from models.store.pages import page
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
    metric_id = stored.billable_metric_id
    if metric_id is not None and metric_id not in metrics:
        raise NotFoundError(f"no live billable metric {metric_id!r}", "billable_metric_id")
    validate_product(stored, metrics)
    known = await _products_named(conn, org_id, stored.composite_product_ids)
    missing = [p for p in stored.composite_product_ids if p not in known]
    if missing:
        raise NotFoundError(f"no product {missing[0]!r}", "composite_product_ids")
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
    """Every product of the organization, archived ones included (old contracts and
    invoices keep pricing them), oldest first."""
    query = (
        select(products.c.document)
        .where(products.c.org_id == org_id)
        .order_by(products.c.created_at, products.c.id)
    )
    return [decode(Product, doc) for doc in (await conn.execute(query)).scalars()]


@dataclass(frozen=True)
class ProductRecord:
    product: Product
    archived_at: datetime | None


async def products_page(
    conn: AsyncConnection, org_id: str, first: int, after: str | None, include_archived: bool
) -> tuple[list[tuple[str, ProductRecord]], bool]:
    query = select(products).where(products.c.org_id == org_id)
    if not include_archived:
        query = query.where(products.c.archived_at.is_(None))
    found = await page(conn, query, products.c.created_at, products.c.id, first, after)
    return [
        (cursor, ProductRecord(decode(Product, row.document), row.archived_at))
        for cursor, row in found.rows
    ], found.has_next


async def update_product(
    conn: AsyncConnection,
    org_id: str,
    product_id: str,
    *,
    name: str | None,
    archive_at: datetime | None = None,
) -> ProductRecord:
    """Rename and/or archive a product of ``org_id`` (archived products take no new rates)."""
    mine = (products.c.id == product_id) & (products.c.org_id == org_id)
    row = (await conn.execute(select(products).where(mine))).first()
    if row is None:
        raise NotFoundError(f"no product {product_id!r}", "id")
    product = decode(Product, row.document)
    values: dict[str, object] = {}
    if name is not None:
        if not 1 <= len(name.strip()) <= 200:
            raise ValidationError("name", "must be 1 to 200 characters")
        product = replace(product, name=name.strip())
        values.update(name=product.name, document=to_json(product))
    if archive_at is not None and row.archived_at is None:
        values["archived_at"] = archive_at
    if values:
        await conn.execute(update(products).where(mine).values(**values))
    archived = archive_at if "archived_at" in values else row.archived_at
    return ProductRecord(product, archived)


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
    stored = await _store_rates(conn, org_id, card_id, currency, rate_list, now)
    return RateCard(id=card_id, name=name, currency=currency, rates=tuple(stored))


async def rate_card_currency(conn: AsyncConnection, org_id: str, rate_card_id: str) -> str:
    """The currency of a rate card of ``org_id``; NOT_FOUND (field ``rate_card_id``)."""
    currency = await conn.scalar(
        select(rate_cards.c.currency).where(
            (rate_cards.c.id == rate_card_id) & (rate_cards.c.org_id == org_id)
        )
    )
    if currency is None:
        raise NotFoundError(f"no rate card {rate_card_id!r}", "rate_card_id")
    return str(currency)


async def _products_named(
    conn: AsyncConnection, org_id: str, product_ids: Sequence[str], *, live: bool = False
) -> dict[str, Product]:
    """The organization's products among ``product_ids`` (live ones only with ``live``)."""
    if not product_ids:
        return {}
    where = (products.c.org_id == org_id) & products.c.id.in_(sorted(set(product_ids)))
    if live:
        where &= products.c.archived_at.is_(None)
    found = await conn.execute(select(products.c.id, products.c.document).where(where))
    return {product_id: decode(Product, document) for product_id, document in found}


async def add_rates(
    conn: AsyncConnection, org_id: str, rate_card_id: str, rate_list: Sequence[Rate], now: datetime
) -> list[Rate]:
    """Validate and store rates (ids assigned here) on a rate card of ``org_id``."""
    currency = await rate_card_currency(conn, org_id, rate_card_id)
    return await _store_rates(conn, org_id, rate_card_id, currency, rate_list, now)


async def _store_rates(
    conn: AsyncConnection,
    org_id: str,
    rate_card_id: str,
    currency: str,
    rate_list: Sequence[Rate],
    now: datetime,
) -> list[Rate]:
    known = await _products_named(conn, org_id, [r.product_id for r in rate_list], live=True)
    stored = []
    for index, rate in enumerate(rate_list):
        product = known.get(rate.product_id)
        if product is None:
            raise NotFoundError(
                f"no live product {rate.product_id!r}", f"rates[{index}].product_id"
            )
        stored.append(replace(rate, id=new_id("rate")))
        try:
            validate_rate(stored[-1], product, currency)
        except ValidationError as error:
            raise ValidationError(f"rates[{index}].{error.field}", error.message) from error
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


async def rate_cards_by_id(
    conn: AsyncConnection, org_id: str, card_ids: Sequence[str]
) -> dict[str, RateCard]:
    """The organization's rate cards among ``card_ids``, with their rates (one query)."""
    wanted = sorted(set(card_ids))
    if not wanted:
        return {}
    query = (
        select(rate_cards.c.id, rate_cards.c.name, rate_cards.c.currency, rates.c.document)
        .select_from(rate_cards.outerjoin(rates, rates.c.rate_card_id == rate_cards.c.id))
        .where((rate_cards.c.org_id == org_id) & rate_cards.c.id.in_(wanted))
        .order_by(rate_cards.c.id, rates.c.created_at, rates.c.id)
    )
    cards: dict[str, tuple[str, str, list[Rate]]] = {}
    for card_id, name, currency, document in await conn.execute(query):
        found = cards.setdefault(card_id, (name, currency, []))
        if document is not None:
            found[2].append(decode(Rate, document))
    return {
        card_id: RateCard(id=card_id, name=name, currency=currency, rates=tuple(found))
        for card_id, (name, currency, found) in cards.items()
    }


async def rate_cards_page(
    conn: AsyncConnection, org_id: str, first: int, after: str | None
) -> tuple[list[tuple[str, RateCard]], bool]:
    query = select(rate_cards.c.id, rate_cards.c.created_at).where(rate_cards.c.org_id == org_id)
    found = await page(conn, query, rate_cards.c.created_at, rate_cards.c.id, first, after)
    cards = await rate_cards_by_id(conn, org_id, [row.id for _, row in found.rows])
    return [(cursor, cards[row.id]) for cursor, row in found.rows], found.has_next
