"""Observability: request ids, structured (JSON) logs and Prometheus metrics.

Metrics live in a registry each app owns (never prometheus_client's global default), so
several apps in one process (the tests) never clash. Multiprocess mode is out of scope:
with ``meterline serve --workers N`` each process answers ``/metrics`` for itself, and the
gauges read from the database and Redis are the same whichever answers.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hmac
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from arq.connections import ArqRedis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.db import Database
from models.store.health import backlog
from notifications.queue import queue_depth
from resolvers.http import json_response
from resolvers.ingest import OUTCOME_STATE
from resolvers.services import services_of
from workers.context import JobMetrics

log = logging.getLogger("meterline.metrics")

# --- request ids ------------------------------------------------------------------------

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "meterline_request_id", default=None
)
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside one)."""
    return _request_id.get()


class RequestIdMiddleware:
    """Takes the caller's ``X-Request-Id`` when sane (1–100 of ``[A-Za-z0-9._-]``), else
    makes one; it is in :func:`current_request_id` (so in every log line) while the
    request is served, and answered as ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _given_id(scope) or uuid.uuid4().hex
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _request_id.reset(token)


def _given_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            return given if SANE_REQUEST_ID.fullmatch(given) else None
    return None


# --- logs -------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id", "color_message", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``,
    ``request_id`` (null outside a request), the record's ``extra`` fields, and
    ``exc_info`` / ``stack_info`` as text. Nothing of the request but its id is logged
    (never a header: no Authorization, no API key)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        if record.exc_info:
            extra["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            extra["stack_info"] = self.formatStack(record.stack_info)
        entry.update((k, v) for k, v in extra.items() if k not in entry)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # e.g. an int past 64 bits in an extra field
            return orjson.dumps({k: str(v) for k, v in entry.items()}).decode()


_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+")
_CREDENTIAL = re.compile(r"\b(ml_(?:live|test|ct)_)[A-Za-z0-9_-]+")
_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]+")


def redact(text: str) -> str:
    """``text`` with every API key, customer token and bearer credential cut to its kind
    (``Bearer …``, ``ml_live_…``), and any ``token=`` of an address (the embed demo page's)."""
    text = _TOKEN_IN_URL.sub(r"\1…", text)
    return _CREDENTIAL.sub(r"\1…", _BEARER.sub(r"\1…", text))


def _redacted(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if arg is None or isinstance(arg, int | float):
        return arg
    data = getattr(arg, "data", None)
    if isinstance(data, bytes) and dataclasses.is_dataclass(arg) and not isinstance(arg, type):
        # a websocket frame (DEBUG): its payload, redacted before the log shortens it
        text = data.decode("utf-8", errors="replace")
        shown = redact(text)
        return arg if shown == text else dataclasses.replace(arg, data=shown.encode())
    text = str(arg)
    shown = redact(text)
    return arg if shown == text else shown


class RedactCredentials(logging.Filter):
    """Cuts credentials out of a record's message and arguments before any handler
    formats it: the websocket frames uvicorn's server logs at DEBUG (a
    ``connection_init`` carries ``{"authorization": "Bearer …"}``), an access log line
    whose address holds a token, anything a library logs with an ``Authorization``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        return True


REDACTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets")
"""Loggers whose records are redacted wherever they go (a filter of a logger applies to
the records logged on it, not to those of its children: each is listed)."""


def redact_credentials_in_logs() -> None:
    """Install :class:`RedactCredentials` on the servers' loggers (idempotent)."""
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())


class _JsonHandler(logging.Handler):
    """Writes each formatted record as a line to whatever ``sys.stderr`` is then."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def configure_logging(log_format: str) -> None:
    """``json``: every log line (ours, ARQ's, uvicorn's access and error logs) one JSON
    object on stderr, from INFO up. ``text``: logging is left as it is (uvicorn's format;
    the request id is only in the ``X-Request-Id`` header). In both, credentials are cut
    out of the servers' log records (:class:`RedactCredentials`) and, in JSON, out of
    every record written. Idempotent."""
    redact_credentials_in_logs()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(handler)
    if log_format != "json":
        return
    handler = _JsonHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactCredentials())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


# --- metrics ----------------------------------------------------------------------------

INGEST_OUTCOMES = ("accepted", "duplicate", "rejected", "warning")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
SCRAPE_TIMEOUT = 2.0  # seconds each source (database, Redis) has to answer a scrape

GAUGES = {
    "meterline_queue_depth": "Jobs in the ARQ queue, deferred ones included.",
    "meterline_queue_ready": "Jobs in the ARQ queue due to run now.",
    "meterline_outbox_backlog": "Pending webhook deliveries due now.",
    "meterline_stripe_pushes_pending": "Invoice pushes to Stripe owed (retries included).",
    "meterline_webhook_endpoints_failing": "Enabled webhook endpoints failing every attempt.",
}


class BacklogCollector(Collector):
    """Gauges read from the database and Redis at scrape time: the ``/metrics`` handler
    calls :meth:`refresh` before each exposition. A source that fails or takes longer than
    ``SCRAPE_TIMEOUT`` leaves its gauges out of that scrape (logged), never failing it.
    Counts across organizations: no label names one."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}

    async def refresh(self, db: Database, redis: ArqRedis, now: datetime) -> None:
        values: dict[str, float] = {}

        async def from_database() -> None:
            async with db.read() as conn:
                found = await backlog(conn, now)
            values["meterline_outbox_backlog"] = found.outbox_due
            values["meterline_stripe_pushes_pending"] = found.stripe_pending
            values["meterline_webhook_endpoints_failing"] = found.endpoints_failing

        async def from_redis() -> None:
            total, ready = await queue_depth(redis)
            values["meterline_queue_depth"] = total
            values["meterline_queue_ready"] = ready

        sources = {"database": from_database(), "redis": from_redis()}
        results = await asyncio.gather(
            *(asyncio.wait_for(read, SCRAPE_TIMEOUT) for read in sources.values()),
            return_exceptions=True,
        )
        for source, result in zip(sources, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("metrics: could not read the %s: %s", source, type(result).__name__)
        self._values = values

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(name, text) for name, text in GAUGES.items()]

    def collect(self) -> Iterable[Metric]:
        values = self._values
        for name, text in GAUGES.items():
            family = GaugeMetricFamily(name, text)
            if name in values:
                family.add_metric([], values[name])
            yield family


class AppMetrics:
    """The app's registry and metrics: ingest outcomes, request latency, the gauges read
    at scrape time, and the job metrics of a worker running in this process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = JobMetrics(self.registry)
        self.ingest_events = Counter(
            "meterline_ingest_events",
            "Events posted to /v1/ingest by outcome: accepted, duplicate, rejected, warning "
            "(accepted with a warning: unknown customer, no matching metric).",
            ["outcome"],
            registry=self.registry,
        )
        self._ingest = {outcome: self.ingest_events.labels(outcome) for outcome in INGEST_OUTCOMES}
        self.request_duration = Histogram(
            "meterline_http_request_duration_seconds",
            "HTTP request latency by method, route template and status class.",
            ["method", "route", "status_class"],
            registry=self.registry,
        )
        self.backlog = BacklogCollector()
        self.registry.register(self.backlog)

    def count_ingest(self, tally: Mapping[str, int]) -> None:
        for outcome, count in tally.items():
            if count:
                self._ingest[outcome].inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HttpMetricsMiddleware:
    """Times every HTTP request into ``meterline_http_request_duration_seconds`` labelled
    by its route template (``/v1/ingest``, never a raw path; ``unmatched`` for a 404),
    and counts the ingest tally the handler leaves in ``request.state``. No I/O."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request_duration.labels(method, route, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )
            tally = scope.get("state", {}).get(OUTCOME_STATE)
            if tally:
                self.metrics.count_ingest(tally)


def metrics_endpoint(
    metrics: AppMetrics, token: str | None
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: open, as scrapers expect, unless ``token`` is set, then it wants
    ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode() if token else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                response = json_response(
                    {"error": {"code": "unauthenticated", "message": "send the metrics token"}},
                    401,
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        services = services_of(request)
        await metrics.backlog.refresh(services.db, services.redis, services.clock())
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
