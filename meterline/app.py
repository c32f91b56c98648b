"""The Starlette application factory and its lifespan (engines, Redis, in-process worker)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime

from arq.connections import RedisSettings, create_pool
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute, request_response
from starlette.types import ASGIApp

from meterline.clock import SystemClock
from meterline.observability import (
    AppMetrics,
    HttpMetricsMiddleware,
    RequestIdMiddleware,
    configure_logging,
    metrics_endpoint,
)
from meterline.settings import Settings
from models.db import RETRY_AFTER_SECONDS, DatabaseUnavailable
from notifications.pubsub import ChangeFeed
from resolvers.embed import demo_page, embed_module
from resolvers.graphql.app import graphql_app
from resolvers.http import HttpError, error_response, json_response
from resolvers.ingest import ingest
from resolvers.rate_limits import Limit, RateLimited, RateLimiter
from resolvers.services import Services, services_of
from resolvers.stripe_webhooks import stripe_webhook
from workers.worker import build_worker, run_worker


async def healthz(_: Request) -> Response:
    return json_response({"status": "ok"})


READY_TIMEOUT_SECONDS = 2.0


async def readyz(request: Request) -> Response:
    """Ready when the database and Redis both answer within 2 s (checked together)."""
    services = services_of(request)

    async def check(probe: Callable[[], Awaitable[object]]) -> str:
        try:
            await asyncio.wait_for(probe(), timeout=READY_TIMEOUT_SECONDS)
        except Exception as error:  # any failure means not ready; say which and why
            return f"error: {type(error).__name__}"
        return "ok"

    database, redis = await asyncio.gather(check(services.db.ping), check(services.redis.ping))
    ready = database == redis == "ok"
    response = json_response(
        {"status": "ok" if ready else "unavailable", "database": database, "redis": redis},
        200 if ready else 503,
    )
    if not ready:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


async def database_unavailable(request: Request, error: Exception) -> Response:
    """503 for a REST request whose database could not be reached in time (the client
    retries; an ingest batch refused so was not stored, and a resent one is deduplicated)."""
    assert isinstance(error, DatabaseUnavailable)
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return error_response(HttpError(503, "database_unavailable", str(error), retry))


HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (no such path, a method the path does not take) in the
    API's JSON error shape, with their headers (``Allow`` on a 405)."""
    assert isinstance(error, HTTPException)
    code = HTTP_CODES.get(error.status_code, "bad_request")
    return error_response(HttpError(error.status_code, code, error.detail, error.headers))


def create_app(
    settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> Starlette:
    settings = settings or Settings()
    clock = clock or SystemClock()
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (meterline serve starts an embedded Redis)")
    redis_url = settings.redis_url
    configure_logging(settings.log_format)
    metrics = AppMetrics()
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = settings.database()
        redis = await create_pool(RedisSettings.from_dsn(redis_url))
        feed = ChangeFeed(redis)
        await feed.start()
        limiter = RateLimiter(
            redis,
            clock,
            keys=Limit(settings.rate_limit_key_per_second, settings.rate_limit_key_burst),
            tokens=Limit(settings.rate_limit_token_per_second, settings.rate_limit_token_burst),
        )
        app.state.services = Services(
            db=db,
            clock=clock,
            redis=redis,
            max_body_bytes=settings.max_body_bytes,
            grace_period=settings.grace_period,
            feed=feed,
            rate_limiter=limiter,
            webhook_allowed_private=tuple(settings.webhook_allowed_private_hosts),
            webhook_secret_overlap=settings.webhook_secret_overlap,
            production=settings.is_production,
        )
        worker_task = None
        if settings.run_worker_in_process:
            worker = build_worker(
                redis,
                db,
                clock,
                handle_signals=False,
                grace_period=settings.grace_period,
                webhooks=settings.webhook_policy(),
                sweep_every=settings.outbox_sweep_seconds,
                metrics=metrics.jobs,
            )
            worker_task = asyncio.create_task(run_worker(worker))
        # What is loaded by now lives as long as the app: keep it out of the cyclic
        # collector's full passes, which otherwise pause requests (p95 of big drafts).
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await feed.stop()
            await redis.aclose()
            await db.dispose()

    origins = settings.cors_allowed_origins
    graphql = graphql_app(production=settings.is_production, allowed_origins=origins)
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint(metrics, metrics_token)),
        Route("/v1/ingest", RateLimited(request_response(ingest), graphql=False), methods=["POST"]),
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/embed/meterline-embed.js", for_browsers(request_response(embed_module), origins)),
        Route("/embed/demo", demo_page),
        Route("/graphql", for_browsers(RateLimited(graphql, graphql=True), origins)),
        WebSocketRoute("/graphql", graphql),
    ]
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(HttpMetricsMiddleware, metrics=metrics),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            DatabaseUnavailable: database_unavailable,
            HTTPException: http_error,
        },
    )
    app.state.metrics = metrics
    return app


def for_browsers(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """``app`` answering pages of ``origins`` (CORS): the embed module and the GraphQL
    API, which browsers call with a bearer customer token, never a cookie (so no
    credentials are ever allowed); ingest and Stripe's webhooks are not for browsers."""
    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type"],
        max_age=600,
    )
