"""Rate limits per API key and per customer token: a token bucket in Redis.

Each credential has a bucket of ``burst`` requests that refills at ``per_second``; a
request takes one, and a request that finds the bucket empty is refused with how long
until one is back (``429`` with ``Retry-After`` on HTTP, ``RATE_LIMITED`` on GraphQL).
The bucket is keyed by the credential's SHA-256 (the credential itself never reaches
Redis), checked before the credential is looked up, so refusing costs no database read;
a credential that turns out unknown still gets 401. Time is the app's clock, so every
process shares one bucket per credential. When Redis cannot answer, the request passes
(logged): Redis is not the system of record, and an outage of it must not stop ingest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from models.store.api_keys import TOKEN_PREFIX, hash_key
from resolvers.graphql.context import bearer
from resolvers.http import HttpError, error_response, graphql_error_response

log = logging.getLogger("meterline.rate_limits")

# KEYS[1]: the bucket; ARGV: now (ms), refill per ms, burst. Returns the ms to wait
# (0: taken). The bucket expires once it would be full again.
_TAKE = """
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(saved[1]), tonumber(saved[2])
if tokens == nil or at == nil then tokens, at = burst, now end
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) else now = at end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return wait
"""


@dataclass(frozen=True)
class Limit:
    """``burst`` requests at once, refilled at ``per_second``; off when ``per_second`` is 0."""

    per_second: float
    burst: int

    @property
    def on(self) -> bool:
        return self.per_second > 0 and self.burst > 0


class RateLimiter:
    """Takes a request from the bucket of the credential that sends it."""

    def __init__(
        self, redis: Redis, clock: Callable[[], datetime], *, keys: Limit, tokens: Limit
    ) -> None:
        self._redis, self._clock = redis, clock
        self._keys, self._tokens = keys, tokens
        self._take = redis.register_script(_TAKE)

    async def wait(self, secret: str) -> float | None:
        """Seconds until ``secret`` may send again if it must wait now; None if this
        request is allowed (and counted)."""
        kind, limit = (
            ("token", self._tokens) if secret.startswith(TOKEN_PREFIX) else ("key", self._keys)
        )
        if not limit.on:
            return None
        now_ms = int(self._clock().timestamp() * 1000)
        try:
            wait_ms = await self._take(
                keys=[f"meterline:rate:{kind}:{hash_key(secret)}"],
                args=[now_ms, repr(limit.per_second / 1000), limit.burst],
            )
        except Exception:  # Redis is down: let the request through
            log.warning("rate limit not checked: Redis did not answer", exc_info=True)
            return None
        return int(wait_ms) / 1000 if int(wait_ms) > 0 else None


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


class RateLimited:
    """An endpoint (``/v1/ingest``, ``/graphql`` over HTTP) that first takes a request from
    the bucket of the credential sending it, and refuses it when the bucket is empty:
    ``429`` with ``Retry-After`` and the endpoint's error shape (REST ``{"error": {"code":
    "rate_limited"}}``, GraphQL ``extensions.code`` ``RATE_LIMITED``). Inside the CORS
    wrapper, so a browser can read the refusal. Websocket operations are limited where
    they start (:mod:`resolvers.graphql.subscriptions`)."""

    def __init__(self, app: ASGIApp, *, graphql: bool) -> None:
        self.app, self.graphql = app, graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secret = None
        if scope["type"] == "http":
            secret = bearer(Headers(scope=scope).get("authorization"))
        if secret is not None:
            limiter: RateLimiter = scope["app"].state.services.rate_limiter
            wait = await limiter.wait(secret)
            if wait is not None:
                await self._refusal(wait)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, wait: float) -> Response:
        message = f"too many requests with this credential; retry in {retry_after(wait)} s"
        response = (
            graphql_error_response(message, "RATE_LIMITED", 429)
            if self.graphql
            else error_response(HttpError(429, "rate_limited", message))
        )
        response.headers["Retry-After"] = retry_after(wait)
        return response
