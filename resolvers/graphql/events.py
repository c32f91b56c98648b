"""Event search by transaction ids (SPEC §1)."""

from __future__ import annotations

from typing import Any

from strawberry.types import Info

from billing.catalog import ProductType
from billing.errors import ValidationError
from models.store.catalog import list_products
from models.store.event_search import MAX_SEARCH, search_events
from resolvers.graphql.context import Context, read, require
from schema.events import FoundEvent
from schema.views import view


async def search_events_by_id(
    info: Info[Context, Any], transaction_ids: list[str]
) -> list[FoundEvent]:
    principal = require(info, "read")
    if not 1 <= len(transaction_ids) <= MAX_SEARCH:
        raise ValidationError("transaction_ids", f"give 1 to {MAX_SEARCH} transaction ids")
    async with read(info) as conn:
        found = await search_events(conn, principal.org_id, transaction_ids)
        billed = {
            p.billable_metric_id
            for p in await list_products(conn, principal.org_id)
            if p.type is ProductType.USAGE
        }
    return [
        view(
            FoundEvent,
            event,
            rated=event.customer_id is not None
            and any(m.matched and m.metric_id in billed for m in event.metrics),
        )
        for event in found
    ]
