"""Schema assembly and the ASGI GraphQL app."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.asgi import GraphQL
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig

from resolvers.graphql.context import build_context
from resolvers.graphql.queries import Mutation, Query

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        ],
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"


class MeterlineGraphQL(GraphQL[Any, None]):
    async def get_context(self, request: Any, response: Any) -> Any:
        return await build_context(request, response)


def graphql_app(*, production: bool) -> MeterlineGraphQL:
    return MeterlineGraphQL(build_schema(), graphql_ide=None if production else "graphiql")
