"""Root query fields."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from models.store.organizations import get_organization
from resolvers.graphql import metrics
from resolvers.graphql.context import Context, require
from schema.errors import graphql_error
from schema.metrics import BillableMetric
from schema.organization import Organization


@strawberry.type
class Query:
    @strawberry.field(description="The caller's organization.")
    async def organization(self, info: Info[Context, Any]) -> Organization:
        principal = require(info, "read")
        async with info.context.services.db.read() as conn:
            found = await get_organization(conn, principal.org_id)
        if found is None:
            raise graphql_error("NOT_FOUND", "organization not found")
        return Organization(id=strawberry.ID(found.id), name=found.name)

    billable_metrics: list[BillableMetric] = strawberry.field(
        resolver=metrics.billable_metrics, description="The organization's billable metrics."
    )


@strawberry.type
class Mutation:
    create_billable_metric: BillableMetric = strawberry.field(
        resolver=metrics.create_billable_metric,
        description="Create a billable metric; stored events of the last 34 days are back-filled.",
    )
    archive_billable_metric: BillableMetric = strawberry.field(
        resolver=metrics.archive_billable_metric
    )
