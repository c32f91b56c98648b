"""Stripe's idempotency keys and a request log, in front of localstripe (see
tests/localstripe_server.py, which installs them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from localstripe import server, webhooks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------------------------
# 4 + 5. Idempotency keys and the request log.


@dataclass
class _Stored:
    fingerprint: tuple[str, str, str, bytes]
    status: int
    body: bytes
    content_type: str | None

    def replay(self) -> web.Response:
        headers = {"Idempotent-Replayed": "true"}
        if self.content_type:
            headers[hdrs.CONTENT_TYPE] = self.content_type
        return web.Response(status=self.status, body=self.body, headers=headers)


REQUEST_LOG: list[dict[str, Any]] = []
_IDEMPOTENT: dict[tuple[str, str], _Stored] = {}
_IN_FLIGHT: set[tuple[str, str]] = set()


def _stripe_error(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": type_}
    if code is not None:
        error["code"] = code
    return server.json_response({"error": error}, status=status)


async def _idempotent(request: web.Request, handler: Handler, entry: dict[str, Any]) -> Any:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)

    multipart = request.content_type.startswith("multipart/")
    body = b"" if multipart else await request.read()  # cached: handlers can read it again
    fingerprint = (request.method, request.path, request.query_string, body)
    slot = (request.headers.get("Authorization", ""), key)

    stored = _IDEMPOTENT.get(slot)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            return _stripe_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                "idempotency_error",
            )
        entry["replayed"] = True
        return stored.replay()
    if slot in _IN_FLIGHT:
        return _stripe_error(
            409,
            "There is currently another in-progress request using this Idempotent Key.",
            "invalid_request_error",
            "idempotency_key_in_use",
        )

    _IN_FLIGHT.add(slot)
    try:
        response = await handler(request)
    finally:
        _IN_FLIGHT.discard(slot)
    if isinstance(response, web.Response) and response.status < 500 and response.status != 401:
        raw = response.body
        if isinstance(raw, bytes):
            _IDEMPOTENT[slot] = _Stored(
                fingerprint, response.status, raw, response.headers.get(hdrs.CONTENT_TYPE)
            )
    return response


@web.middleware
async def launcher_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_test/"):
        # Test-only routes: skip localstripe's middlewares (no API key needed).
        return await request.match_info.handler(request)

    if not request.path.startswith("/v1/"):
        response = await handler(request)
        if request.method == "DELETE" and request.path == "/_config/data":
            _IDEMPOTENT.clear()
        return response

    entry: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "idempotency_key": request.headers.get("Idempotency-Key"),
        "replayed": False,
        "status": None,
    }
    REQUEST_LOG.append(entry)
    try:
        response = await _idempotent(request, handler, entry)
    except web.HTTPException as e:
        entry["status"] = e.status
        raise
    except BaseException:
        entry["status"] = 500
        raise
    entry["status"] = response.status
    return response


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(REQUEST_LOG)


async def clear_requests(request: web.Request) -> web.Response:
    REQUEST_LOG.clear()
    return web.json_response([])


async def unregister_webhook(request: web.Request) -> web.Response:
    webhooks._webhooks.pop(request.match_info["id"], None)
    return web.Response()


def install(app: web.Application) -> None:
    """Put the idempotency keys and the request log in front of localstripe's ``app``."""
    app.middlewares.insert(0, launcher_middleware)
    app.router.add_get("/_test/requests", get_requests)
    app.router.add_delete("/_test/requests", clear_requests)
    app.router.add_delete("/_test/webhooks/{id}", unregister_webhook)
