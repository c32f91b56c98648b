"""REST plumbing: JSON errors, bearer keys, bounded (and gzip) bodies."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from models.store.api_keys import Principal, authenticate
from resolvers.services import Services


class HttpError(Exception):
    """An expected failure answered as ``{"error": {"code", "message"}}`` (with ``headers``,
    e.g. ``Retry-After``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def error_response(error: HttpError) -> Response:
    body = {"error": {"code": error.code, "message": error.message}}
    response = json_response(body, error.status)
    response.headers.update(error.headers)
    return response


def graphql_error_response(message: str, code: str, status: int) -> Response:
    """A GraphQL response refused as a whole: no data, one error with ``code``."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}
    return json_response(body, status)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, "unauthenticated", "send an API key as 'Authorization: Bearer …'")
    return token.strip()


async def require_key(request: Request, services: Services, scope: str) -> Principal:
    token = bearer_token(request)
    async with services.db.read() as conn:
        principal = await authenticate(conn, token, services.clock())
    if principal is None:
        raise HttpError(401, "unauthenticated", "the API key is unknown or revoked")
    if not principal.can(scope):
        raise HttpError(403, "forbidden", f"the API key lacks the '{scope}' scope")
    return principal


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped if needed; 413 past ``limit`` bytes (decompressed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "payload_too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding == "gzip" or raw[:2] == b"\x1f\x8b":
        return _gunzip(raw, limit)
    if encoding not in ("", "identity"):
        raise HttpError(415, "unsupported_encoding", f"content-encoding {encoding!r}")
    return raw


def _gunzip(raw: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as error:
        raise HttpError(400, "invalid_body", f"the gzip body is corrupt: {error}") from error
    if len(body) > limit or inflater.unconsumed_tail:
        raise HttpError(413, "payload_too_large", f"the body inflates past {limit} bytes")
    if not inflater.eof:
        raise HttpError(400, "invalid_body", "the gzip body is truncated")
    if inflater.unused_data:
        raise HttpError(400, "invalid_body", "the gzip body has bytes after its end")
    return body
