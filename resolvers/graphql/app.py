"""Schema assembly and the ASGI GraphQL app, with hardening: depth, token and alias
limits, error codes on every error, unexpected errors masked and logged, and in
production no introspection, no GraphiQL and no field suggestions.

A database out of reach is ``SERVICE_UNAVAILABLE``: a request answered nothing but that
(no field has data) is HTTP 503 with ``Retry-After``; one with partial data stays 200, the
failed fields carrying the code, so the data is not thrown away.

Subscriptions run over websockets with the graphql-transport-ws protocol only; the socket
is authenticated by its ``connection_init`` payload
(``{"authorization": "Bearer <API key or customer token>"}``) and closed with 4403
Forbidden without a valid credential, so no operation ever runs unauthenticated."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, cast

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from billing.errors import BillingError
from models.db import RETRY_AFTER_SECONDS, DatabaseUnavailable
from resolvers.graphql.context import build_context, principal_of
from resolvers.graphql.loaders import Loaders
from resolvers.graphql.queries import Mutation, Query
from resolvers.graphql.subscriptions import SocketContext, Subscription
from resolvers.http import graphql_error_response
from resolvers.services import Services
from schema.scalars import SCALAR_MAP

MAX_DEPTH = 12
MAX_TOKENS = 5000
MAX_ALIASES = 30
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
UNAVAILABLE_STATE = "meterline_graphql_unavailable"
"""Set on ``request.state`` when a response holds only SERVICE_UNAVAILABLE errors and no
data: it is then sent as 503."""

log = logging.getLogger("meterline.graphql")
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def build_schema(*, production: bool = False) -> strawberry.Schema:
    """The schema with its hardening. Parsing and validation are cached per document
    (both are pure functions of the query text, the schema and the rules): the limits'
    rule classes are built once, so every request validates with the same rules."""
    limits = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    extensions: list[Any] = [
        lambda: AddValidationRules(limits),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ParserCache,
        ValidationCache,
        lambda: SocketOperations(production=production),
    ]
    if production:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALAR_MAP),
        extensions=extensions,
    )


def schema_sdl() -> str:
    """The schema in SDL, as committed in ``schema/schema.graphql``."""
    return build_schema().as_str() + "\n"


def _coded(error: GraphQLError, production: bool) -> GraphQLError:
    """``error`` with ``extensions.code``: the core's code for expected failures,
    SERVICE_UNAVAILABLE when the database is, BAD_REQUEST for malformed or invalid
    operations, INTERNAL (message masked, error logged) otherwise."""
    original = error.original_error
    extensions = dict(error.extensions or {})
    message = error.message
    if isinstance(original, BillingError):
        extensions["code"] = original.code
        if original.field is not None:
            extensions["field"] = original.field
        message = original.message
    elif isinstance(original, DatabaseUnavailable):
        extensions = {"code": SERVICE_UNAVAILABLE}
        message = str(original)
    elif "code" not in extensions:
        # no path but a place in the document: parsing, validation or the coercion of a
        # literal or variable (e.g. an Int of 5,000 digits), whatever raised it
        in_document = error.path is None and bool(error.nodes)
        if (
            original is None
            or in_document
            or isinstance(original, GraphQLError | CannotGetOperationTypeError)
        ):
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


class SocketOperations(SchemaExtension):
    """What the websocket transport needs: each operation its own context (its own
    loaders: the connection's would cache for the life of the socket), and error codes on
    the results it streams (HTTP responses get theirs in ``process_result``)."""

    def __init__(self, *, production: bool) -> None:
        self.production = production

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, SocketContext):
            self.execution_context.context = dataclasses.replace(context)
        yield

    def on_stream_result(self, result: Any) -> Iterator[None]:
        for error in getattr(result, "errors", None) or ():
            coded = _coded(error, self.production)
            # in place: the transport tells some errors by class (syntax errors close)
            error.message, error.extensions = coded.message, coded.extensions
        yield


class MeterlineGraphQL(GraphQL[Any, None]):
    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        production: bool,
        allowed_origins: Sequence[str] = ("*",),
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None if production else "graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            # the credential travels in connection_init, never in a cookie: a page of any
            # origin may open a socket (the default), it reaches nothing without a key or
            # token; an installation may list its origins
            allowed_origins=tuple(allowed_origins),
        )
        self.production = production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Request-level failures (bad body, no query, mutation over GET…) answer JSON with
        ``extensions.code`` like every other error, not plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = graphql_error_response(error.reason, "BAD_REQUEST", error.status_code)
        except DatabaseUnavailable as error:  # while finding who calls (the context)
            response = graphql_error_response(str(error), SERVICE_UNAVAILABLE, 503)
        if getattr(request.state, UNAVAILABLE_STATE, False):
            response.status_code = 503
        if response.status_code == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        await response(scope, receive, send)

    async def parse_http_body(self, request: Any) -> Any:
        """The request, refused when its document holds several operations but names none
        (which one would run is ambiguous), or when it is a subscription (served over a
        websocket only)."""
        try:
            data = await super().parse_http_body(request)
        except (AttributeError, TypeError) as error:  # a JSON body that is not an object
            raise HTTPException(400, "the body must be a JSON object with a query") from error
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item.query, str):
                continue
            try:
                document = parse(item.query)
            except GraphQLError:
                continue  # reported with a code by the execution
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if item.operation_name is None and len(operations) > 1:
                raise HTTPException(
                    400, "the document holds several operations: send operationName"
                )
            chosen = [
                o
                for o in operations
                if item.operation_name is None or (o.name and o.name.value == item.operation_name)
            ]
            if any(o.operation is OperationType.SUBSCRIPTION for o in chosen):
                raise HTTPException(
                    400, "subscriptions are served over a websocket (graphql-transport-ws)"
                )
        return data

    async def get_context(self, request: Any, response: Any) -> Any:
        if isinstance(request, WebSocket):
            services = request.app.state.services
            assert isinstance(services, Services)
            return SocketContext(services, None)
        return await build_context(request, response)

    async def on_ws_connect(self, context: Any) -> UnsetType:
        """Authenticate the socket by its ``connection_init`` payload; refuse it (4403)
        without a valid API key or customer token."""
        assert isinstance(context, SocketContext)
        principal = await principal_of(context.services, context.authorization)
        if principal is None:
            raise ConnectionRejectionError()
        context.principal = principal
        context.loaders = Loaders(context.services, principal)
        return cast(UnsetType, UNSET)

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [_coded(e, self.production) for e in result.errors]
            codes = {(e.extensions or {}).get("code") for e in result.errors}
            if codes == {SERVICE_UNAVAILABLE} and not _has_data(result.data):
                setattr(request.state, UNAVAILABLE_STATE, True)
        return await super().process_result(request, result)


def _has_data(data: dict[str, Any] | None) -> bool:
    """Whether any root field was answered (a failed nullable field is null)."""
    return data is not None and any(value is not None for value in data.values())


def graphql_app(*, production: bool, allowed_origins: Sequence[str] = ("*",)) -> MeterlineGraphQL:
    return MeterlineGraphQL(
        build_schema(production=production),
        production=production,
        allowed_origins=allowed_origins,
    )
