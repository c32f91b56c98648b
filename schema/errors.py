"""GraphQL errors carrying ``extensions.code`` (NOT_FOUND, VALIDATION, FORBIDDEN, …)."""

from __future__ import annotations

from graphql import GraphQLError


def graphql_error(code: str, message: str, field: str | None = None) -> GraphQLError:
    extensions: dict[str, object] = {"code": code}
    if field is not None:
        extensions["field"] = field
    return GraphQLError(message, extensions=extensions)
