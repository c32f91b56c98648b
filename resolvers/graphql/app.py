"""Schema assembly and the ASGI GraphQL app, with hardening: depth, token and alias
limits, error codes on every error, unexpected errors masked and logged, and in
production no introspection, no GraphiQL and no field suggestions."""

from __future__ import annotations

import logging
import re
from typing import Any

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, parse
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from billing.errors import BillingError
from resolvers.graphql.context import build_context
from resolvers.graphql.queries import Mutation, Query
from schema.scalars import SCALAR_MAP

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30

log = logging.getLogger("meterline.graphql")
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def build_schema(*, production: bool = False) -> strawberry.Schema:
    extensions: list[Any] = [
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
        extensions=extensions,
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"


def _coded(error: GraphQLError, production: bool) -> GraphQLError:
    """``error`` with ``extensions.code``: the core's code for expected failures, BAD_REQUEST
    for malformed or invalid operations, INTERNAL (message masked, error logged) otherwise."""
    original = error.original_error
    extensions = dict(error.extensions or {})
    message = error.message
    if isinstance(original, BillingError):
        extensions["code"] = original.code
        if original.field is not None:
            extensions["field"] = original.field
        message = original.message
    elif "code" not in extensions:
        if original is None or isinstance(original, GraphQLError):
            extensions["code"] = "BAD_REQUEST"
        else:
            log.error("unexpected error in %s", error.path, exc_info=original)
            extensions = {"code": "INTERNAL"}
            message = "Unexpected error."
    if production:
        message = SUGGESTION.sub("", message)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class MeterlineGraphQL(GraphQL[Any, None]):
    def __init__(self, schema: strawberry.Schema, *, production: bool) -> None:
        super().__init__(schema, graphql_ide=None if production else "graphiql")
        self.production = production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Request-level failures (bad body, no query, mutation over GET…) answer JSON with
        ``extensions.code`` like every other error, not plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            body = {
                "data": None,
                "errors": [{"message": error.reason, "extensions": {"code": "BAD_REQUEST"}}],
            }
            response = JSONResponse(body, status_code=error.status_code)
        await response(scope, receive, send)

    async def parse_http_body(self, request: Any) -> Any:
        """The request, refused when its document holds several operations but names none
        (which one would run is ambiguous)."""
        try:
            data = await super().parse_http_body(request)
        except (AttributeError, TypeError) as error:  # a JSON body that is not an object
            raise HTTPException(400, "the body must be a JSON object with a query") from error
        for item in data if isinstance(data, list) else [data]:
            if item.operation_name is None and isinstance(item.query, str):
                try:
                    document = parse(item.query)
                except GraphQLError:
                    continue  # reported with a code by the execution
                operations = [
                    d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                ]
                if len(operations) > 1:
                    raise HTTPException(
                        400, "the document holds several operations: send operationName"
                    )
        return data

    async def get_context(self, request: Any, response: Any) -> Any:
        return await build_context(request, response)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [_coded(e, self.production) for e in result.errors]
        return await super().process_result(request, result)


def graphql_app(*, production: bool) -> MeterlineGraphQL:
    return MeterlineGraphQL(build_schema(production=production), production=production)
