"""The tenant as GraphQL sees it."""

from __future__ import annotations

import strawberry


@strawberry.type(description="The organization (tenant) the caller's credentials belong to.")
class Organization:
    id: strawberry.ID
    name: str
