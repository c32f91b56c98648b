"""Per-request GraphQL context: the services and who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from strawberry.types import Info

from models.store.api_keys import Principal, authenticate
from resolvers.services import Services, services_of
from schema.errors import graphql_error


@dataclass
class Context:
    request: Request
    services: Services
    principal: Principal | None
    credentials_given: bool


async def build_context(request: Request, _response: Any = None) -> Context:
    services = services_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        async with services.db.read() as conn:
            principal = await authenticate(conn, token.strip())
    return Context(request, services, principal, bool(token.strip()))


def require(info: Info[Context, Any], scope: str) -> Principal:
    """The caller's principal if it holds ``scope``; else UNAUTHENTICATED / FORBIDDEN."""
    context = info.context
    if context.principal is None:
        raise graphql_error("UNAUTHENTICATED", "send a valid API key as 'Authorization: Bearer …'")
    if not context.principal.can(scope):
        raise graphql_error("FORBIDDEN", f"the API key lacks the '{scope}' scope")
    return context.principal
