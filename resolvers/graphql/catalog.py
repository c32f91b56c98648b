"""Products, rate cards and rates."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from billing.catalog import Product as CoreProduct
from billing.catalog import Rate as CoreRate
from billing.catalog import RateCard as CoreRateCard
from models.codec import to_json
from models.store import catalog as store
from models.store.catalog import ProductRecord
from resolvers.graphql.context import Context, mutation, not_found, read, require
from resolvers.graphql.convert import connection, core_of, plain, rate_of
from schema.catalog import (
    AddRatesInput,
    CreateProductInput,
    CreateRateCardInput,
    Product,
    Rate,
    RateCard,
    UpdateProductInput,
)
from schema.pagination import DEFAULT_PAGE, Connection
from schema.views import view


def product_view(record: ProductRecord) -> Product:
    return view(Product, record.product, record)


def rate_view(rate: CoreRate) -> Rate:
    return view(Rate, rate, rate.spec)


def rate_card_view(card: CoreRateCard) -> RateCard:
    return view(RateCard, card, rates=[rate_view(r) for r in card.rates])


async def products(
    info: Info[Context, Any],
    first: int = DEFAULT_PAGE,
    after: str | None = None,
    include_archived: bool = False,
) -> Connection[Product]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.products_page(conn, principal.org_id, first, after, include_archived)
    return connection(found, product_view)


async def rate_cards(
    info: Info[Context, Any], first: int = DEFAULT_PAGE, after: str | None = None
) -> Connection[RateCard]:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.rate_cards_page(conn, principal.org_id, first, after)
    return connection(found, rate_card_view)


async def rate_card(info: Info[Context, Any], id: strawberry.ID) -> RateCard:
    principal = require(info, "read")
    async with read(info) as conn:
        found = await store.rate_cards_by_id(conn, principal.org_id, [str(id)])
    if str(id) not in found:
        raise not_found("rate card", id)
    return rate_card_view(found[str(id)])


async def create_product(info: Info[Context, Any], input: CreateProductInput) -> Product:
    principal = require(info, "admin")
    product = core_of(CoreProduct, {**plain(input), "id": ""})
    async with mutation(info, principal) as (conn, audit):
        stored = await store.create_product(
            conn, principal.org_id, product, info.context.services.clock(), input.uniqueness_key
        )
        await audit("product", stored.id, to_json(stored))
    return view(Product, stored, archived_at=None)


async def update_product(info: Info[Context, Any], input: UpdateProductInput) -> Product:
    principal = require(info, "admin")
    async with mutation(info, principal) as (conn, audit):
        record = await store.update_product(conn, principal.org_id, str(input.id), name=input.name)
        await audit("product", record.product.id, plain(input))
    return product_view(record)


async def archive_product(info: Info[Context, Any], id: strawberry.ID) -> Product:
    principal = require(info, "admin")
    now = info.context.services.clock()
    async with mutation(info, principal) as (conn, audit):
        record = await store.update_product(
            conn, principal.org_id, str(id), name=None, archive_at=now
        )
        await audit("product", str(id), {"archived_at": now.isoformat()})
    return product_view(record)


async def create_rate_card(info: Info[Context, Any], input: CreateRateCardInput) -> RateCard:
    principal = require(info, "admin")
    rates = [rate_of({**plain(r), "id": ""}) for r in input.rates]
    async with mutation(info, principal) as (conn, audit):
        card = await store.create_rate_card(
            conn,
            principal.org_id,
            input.name,
            input.currency,
            rates,
            info.context.services.clock(),
            input.uniqueness_key,
        )
        await audit("rate_card", card.id, to_json(card))
    return rate_card_view(card)


async def add_rates(info: Info[Context, Any], input: AddRatesInput) -> RateCard:
    principal = require(info, "admin")
    rates = [rate_of({**plain(r), "id": ""}) for r in input.rates]
    card_id = str(input.rate_card_id)
    async with mutation(info, principal) as (conn, audit):
        added = await store.add_rates(
            conn, principal.org_id, card_id, rates, info.context.services.clock()
        )
        await audit("rate_card", card_id, {"added_rates": to_json(added)})
        found = await store.rate_cards_by_id(conn, principal.org_id, [card_id])
    return rate_card_view(found[card_id])
