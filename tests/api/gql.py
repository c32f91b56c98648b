"""GraphQL calls for the API tests: post an operation, read its error codes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Env


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


async def post(env: Env, query: str, key: str | None = None, **variables: Any) -> httpx.Response:
    """The raw response to one operation (for tests about status codes and bodies)."""
    return await env.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=auth(key)
    )


async def gql(env: Env, query: str, key: str | None = None, **variables: Any) -> dict[str, Any]:
    """The JSON body of one operation, which must be answered with 200."""
    response = await post(env, query, key, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def data(env: Env, query: str, key: str | None = None, **variables: Any) -> dict[str, Any]:
    """The ``data`` of an operation that must succeed."""
    body = await gql(env, query, key, **variables)
    assert "errors" not in body, body["errors"]
    found: dict[str, Any] = body["data"]
    return found


def codes(body: dict[str, Any]) -> list[str]:
    """The ``extensions.code`` of every error (an error without one fails the test)."""
    errors = body.get("errors") or []
    return [str(error["extensions"]["code"]) for error in errors]


def code(body: dict[str, Any]) -> str:
    """The code of the operation's only error."""
    found = codes(body)
    assert len(found) == 1, body
    return found[0]
