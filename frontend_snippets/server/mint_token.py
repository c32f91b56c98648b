"""Mint a Meterline customer token on your backend, for your logged-in user's browser.

A customer token (``ml_ct_…``) sees one customer only, expires (``ttl_seconds``: 1 hour by
default, at most 1 day) and may read that customer's usage, drafts, invoices, balances and
alerts, and create or archive its budget alerts. It is minted with an *admin* API key.

The admin key stays on this server: read it from the environment (``METERLINE_ADMIN_KEY``),
never put it in HTML, JavaScript, a mobile app or a response. Hand the browser the token
and its expiry only; when the token expires, Meterline answers ``UNAUTHENTICATED`` and the
browser asks your endpoint for a new one.

    METERLINE_ADMIN_KEY=… METERLINE_GRAPHQL_URL=https://billing.example.com/graphql \
        python mint_token.py <customer id>        # prints a token

Requires ``httpx`` (and ``starlette`` for the endpoint example).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

CREATE_CUSTOMER_TOKEN = """
mutation CreateCustomerToken($input: CreateCustomerTokenInput!) {
  createCustomerToken(input: $input) {
    token
    customerId
    expiresAt
  }
}
"""

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/graphql"

log = logging.getLogger("meterline.mint_token")


class MeterlineError(Exception):
    """A GraphQL error from Meterline; ``code`` is its ``extensions.code``."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _request(customer_id: str, ttl_seconds: int, admin_key: str | None) -> dict[str, Any]:
    key = admin_key or os.environ.get("METERLINE_ADMIN_KEY")
    if not key:
        raise RuntimeError("set METERLINE_ADMIN_KEY (an API key with scope admin)")
    if not 1 <= ttl_seconds <= 86_400:
        raise ValueError("ttl_seconds is 1 to 86400 (a token lives at most one day)")
    return {
        "headers": {"Authorization": f"Bearer {key}"},
        "json": {
            "query": CREATE_CUSTOMER_TOKEN,
            "variables": {"input": {"customerId": customer_id, "ttlSeconds": ttl_seconds}},
        },
    }


def _token(response: httpx.Response) -> dict[str, str]:
    try:
        body = response.json()
    except ValueError:
        response.raise_for_status()
        raise
    if body.get("errors"):
        first = body["errors"][0]
        raise MeterlineError(first.get("message", ""), (first.get("extensions") or {}).get("code"))
    response.raise_for_status()
    minted: dict[str, str] = body["data"]["createCustomerToken"]
    return minted  # {"token": "ml_ct_…", "customerId": "…", "expiresAt": "…Z"}


async def mint_customer_token(
    customer_id: str,
    *,
    ttl_seconds: int = 3600,
    endpoint: str | None = None,
    admin_key: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> dict[str, str]:
    """``{"token", "customerId", "expiresAt"}`` of a new token for ``customer_id``.

    Raises :class:`MeterlineError` (``NOT_FOUND``: no such customer; ``UNAUTHENTICATED`` /
    ``FORBIDDEN``: the admin key is wrong or lacks scope admin)."""
    url = endpoint or os.environ.get("METERLINE_GRAPHQL_URL", DEFAULT_ENDPOINT)
    request = _request(customer_id, ttl_seconds, admin_key)
    if client is not None:
        return _token(await client.post(url, **request))
    async with httpx.AsyncClient(timeout=10) as own:
        return _token(await own.post(url, **request))


def mint_customer_token_sync(
    customer_id: str,
    *,
    ttl_seconds: int = 3600,
    endpoint: str | None = None,
    admin_key: str | None = None,
) -> dict[str, str]:
    """The same, blocking (Flask, Django, scripts)."""
    url = endpoint or os.environ.get("METERLINE_GRAPHQL_URL", DEFAULT_ENDPOINT)
    request = _request(customer_id, ttl_seconds, admin_key)
    return _token(httpx.post(url, timeout=10, **request))


# --- An endpoint your backend exposes to its logged-in user (Starlette) ---------------------

CustomerOf = Callable[[Any], Awaitable[str | None]]


def token_route(customer_of: CustomerOf, *, ttl_seconds: int = 3600, **mint: Any) -> Any:
    """``GET /api/meterline-token``: a fresh customer token for the logged-in user.

    ``customer_of(request)`` returns the Meterline customer id of the user the request is
    logged in as (from *your* session), or None (answered 401). The answer is
    ``{"token", "customerId", "expiresAt"}``, not cached. ``mint`` is passed on to
    :func:`mint_customer_token` (``endpoint``, ``client``)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if not 1 <= ttl_seconds <= 86_400:  # a mistake in your code: fail now, not per request
        raise ValueError("ttl_seconds is 1 to 86400 (a token lives at most one day)")
    unavailable = {"error": "billing unavailable"}
    no_store = {"Cache-Control": "no-store"}

    async def endpoint(request: Request) -> JSONResponse:
        customer_id = await customer_of(request)
        if customer_id is None:
            return JSONResponse({"error": "log in first"}, status_code=401, headers=no_store)
        try:
            minted = await mint_customer_token(customer_id, ttl_seconds=ttl_seconds, **mint)
        except MeterlineError as error:
            # Never echo Meterline's answer verbatim: it concerns your admin key.
            log.warning("minting a customer token failed: %s (%s)", error, error.code)
            return JSONResponse({**unavailable, "code": error.code}, 502, headers=no_store)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            # Meterline unreachable, timed out, or an answer that is not a token (an HTTP
            # error status, not JSON): a 502 in JSON, never a traceback.
            log.warning("minting a customer token failed: %r", error)
            return JSONResponse(unavailable, 502, headers=no_store)
        return JSONResponse(minted, headers=no_store)

    return Route("/api/meterline-token", endpoint, methods=["GET"])


async def customer_of_session(request: Any) -> str | None:
    """The Meterline customer id your login stored in the session (Starlette's
    ``SessionMiddleware``); adapt to however your app knows who is logged in. Never take the
    customer id from the request itself (a query parameter, a header): anyone could then
    mint a token for any customer."""
    customer_id = request.session.get("meterline_customer_id")
    return customer_id if isinstance(customer_id, str) else None


def create_app() -> Any:
    """``uvicorn --factory mint_token:create_app`` (your login sets the session key)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware

    return Starlette(
        routes=[token_route(customer_of_session)],
        middleware=[Middleware(SessionMiddleware, secret_key=os.environ["SESSION_SECRET"])],
    )


if __name__ == "__main__":
    import sys

    print(mint_customer_token_sync(sys.argv[1]))
