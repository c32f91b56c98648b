"""Observability through the app: ``GET /metrics`` (ingest outcomes, request latency by
route template, job and webhook metrics, gauges read at scrape time, the optional token),
``X-Request-Id`` and JSON logs carrying it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from meterline.app import create_app
from meterline.observability import (
    BacklogCollector,
    JsonFormatter,
    RequestIdMiddleware,
    configure_logging,
)
from meterline.settings import Settings
from models.db import Database
from models.store.webhook_endpoints import record_health
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from tests.api.receiver import Receiver, receiver_fixture
from tests.api.test_deliveries import setup
from tests.conftest import Env
from tests.integration.support import event
from workers.worker import build_worker

receiver = receiver_fixture

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(env: Env, client: httpx.AsyncClient | None = None) -> Samples:
    response = await (client or env.client).get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def ingested(samples: Samples, outcome: str) -> float | None:
    return value(samples, "meterline_ingest_events_total", outcome=outcome)


# --- ingest and request latency ---------------------------------------------------------


async def test_ingest_outcomes_and_latency_are_counted(env: Env) -> None:
    before = await scrape(env)
    assert [ingested(before, o) for o in ("accepted", "duplicate", "rejected", "warning")] == [
        0,
        0,
        0,
        0,
    ]
    batch = [event("a"), event("a"), event("b", timestamp="yesterday")]
    body = (await env.ingest(batch)).json()
    assert body["accepted"] == 1 and body["duplicates"] == ["a"]
    assert len(body["rejected"]) == 1 and len(body["warnings"]) == 1  # unknown customer
    assert (await env.ingest([event("c"), event("d")])).status_code == 200
    after = await scrape(env)
    assert ingested(after, "accepted") == 3
    assert ingested(after, "duplicate") == 1
    assert ingested(after, "rejected") == 1
    assert ingested(after, "warning") == 3
    ingest = {"method": "POST", "route": "/v1/ingest", "status_class": "2xx"}
    assert value(after, "meterline_http_request_duration_seconds_count", **ingest) == 2
    assert value(after, "meterline_http_request_duration_seconds_sum", **ingest) > 0
    assert value(after, "meterline_http_request_duration_seconds_bucket", le="+Inf", **ingest) == 2


async def test_an_unauthenticated_ingest_counts_no_event(env: Env) -> None:
    response = await env.client.post("/v1/ingest", json=[event("a")])
    assert response.status_code == 401
    samples = await scrape(env)
    assert ingested(samples, "accepted") == 0
    ingest = {"method": "POST", "route": "/v1/ingest", "status_class": "4xx"}
    assert value(samples, "meterline_http_request_duration_seconds_count", **ingest) == 1


async def test_routes_are_labelled_by_template_never_by_raw_path(env: Env) -> None:
    await env.client.get("/embed/demo", params={"token": "ml_ct_secret"})
    await env.client.get("/v1/customers/cus_123")
    await env.client.request("PURGE", "/healthz")
    await env.client.post("/graphql", json={"query": "{ __typename }"})
    samples = await scrape(env)
    routes = {
        dict(labels)["route"]: dict(labels)
        for name, labels in samples
        if name == "meterline_http_request_duration_seconds_count"
    }
    assert set(routes) == {"/embed/demo", "unmatched", "/healthz", "/graphql"}
    assert routes["unmatched"]["status_class"] == "4xx"
    assert routes["/healthz"]["method"] == "other"
    text = (await env.client.get("/metrics")).text
    assert "cus_123" not in text and "ml_ct_secret" not in text


# --- gauges read at scrape time -----------------------------------------------------------


async def test_gauges_show_a_pending_delivery_and_a_failing_endpoint(
    env: Env,
    receiver: Receiver,
) -> None:
    samples = await scrape(env)
    for gauge in ("outbox_backlog", "stripe_pushes_pending", "webhook_endpoints_failing"):
        assert value(samples, f"meterline_{gauge}") == 0
    assert value(samples, "meterline_queue_depth") == 0
    endpoint_id, _ = await setup(env, receiver)
    samples = await scrape(env)
    assert value(samples, "meterline_outbox_backlog") == 1
    assert value(samples, "meterline_queue_depth") == 1
    assert value(samples, "meterline_queue_ready") == 1
    assert value(samples, "meterline_webhook_endpoints_failing") == 0
    async with env.write() as conn:
        await record_health(conn, endpoint_id, False, env.clock())
    samples = await scrape(env)
    assert value(samples, "meterline_webhook_endpoints_failing") == 1
    assert env.org_id not in (await env.client.get("/metrics")).text


async def test_a_source_that_fails_is_left_out_never_failing_the_scrape(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = ArqRedis(host="127.0.0.1", port=1)  # nothing listens there
    collector = BacklogCollector()
    await collector.refresh(env.db, nowhere, env.clock())
    found = {family.name: family.samples for family in collector.collect()}
    assert [s.value for s in found["meterline_outbox_backlog"]] == [0]
    assert found["meterline_queue_depth"] == [] and found["meterline_queue_ready"] == []
    assert "could not read the redis: ConnectionError" in caplog.text
    missing = Database(f"sqlite+aiosqlite:///{env.backend.name}-missing/none.db")
    await collector.refresh(missing, nowhere, env.clock())
    assert all(samples == [] for samples in (f.samples for f in collector.collect()))
    await nowhere.aclose()
    await missing.dispose()


# --- jobs and webhook attempts -----------------------------------------------------------


async def test_webhook_attempts_and_job_runs_are_counted(
    env: Env,
    receiver: Receiver,
) -> None:
    await setup(env, receiver)
    await run_worker(env)
    samples = await scrape(env)
    assert value(samples, "meterline_webhook_attempts_total", outcome="succeeded") == 1
    receiver.script = [410]
    await emit(env)
    await run_worker(env)
    samples = await scrape(env)
    attempts = {
        outcome: value(samples, "meterline_webhook_attempts_total", outcome=outcome)
        for outcome in ("succeeded", "retrying", "failed", "refused", "gone")
    }
    assert attempts == {"succeeded": 1, "retrying": 0, "failed": 0, "refused": 0, "gone": 1}
    assert value(samples, "meterline_job_duration_seconds_count", job="deliver_webhook") == 2
    assert value(samples, "meterline_job_failures_total", job="deliver_webhook") == 0
    assert len(receiver.received) == 2


async def test_a_job_that_raises_is_a_failure(env: Env) -> None:
    await env.redis.enqueue_job("backfill_metric")  # its argument is missing: TypeError
    await run_worker(env)
    samples = await scrape(env)
    assert value(samples, "meterline_job_duration_seconds_count", job="backfill_metric") == 1
    assert value(samples, "meterline_job_failures_total", job="backfill_metric") == 1


async def test_a_standalone_worker_serves_its_metrics_on_a_port(env: Env) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = build_worker(
        env.redis,
        env.db,
        env.clock,
        handle_signals=False,
        burst=True,
        metrics_port=port,
        metrics_addr="127.0.0.1",
    )
    await env.redis.enqueue_job("backfill_metric", "no-such-metric")
    await worker.main()
    try:
        served = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")
    finally:
        assert worker.on_shutdown is not None
        await worker.on_shutdown(worker.ctx)  # stops the server (close() would end the pool)
    samples = parse(served.text)
    assert value(samples, "meterline_job_duration_seconds_count", job="backfill_metric") == 1
    assert value(samples, "meterline_webhook_attempts_total", outcome="succeeded") == 0
    assert value(samples, "meterline_ingest_events_total", outcome="accepted") is None
    with pytest.raises(httpx.ConnectError):
        await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")


async def run_worker(env: Env) -> None:
    """Every queued job, by a worker reporting into the app's metrics."""
    metrics = env.app.state.metrics.jobs
    worker = build_worker(
        env.redis,
        env.db,
        env.clock,
        handle_signals=False,
        burst=True,
        webhooks=env.webhooks,
        metrics=metrics,
    )
    await worker.main()


async def emit(env: Env) -> None:
    outbox = Outbox()
    async with env.write() as conn:
        event = WebhookEvent("customer.created", {"customer_id": "c2", "name": "D"}, None)
        await outbox.emit(conn, env.org_id, event, env.clock())
    await outbox.dispatch(env.redis)


async def test_the_in_process_worker_reports_into_the_apps_metrics(
    env: Env,
    receiver: Receiver,
) -> None:
    settings = Settings(
        database_url=env.backend.database_url,
        redis_url=env.backend.redis_url,
        webhook_allowed_private_hosts=["localhost"],
        run_worker_in_process=True,
    )
    await setup(env, receiver)
    app = create_app(settings, env.clock)
    async with running(app) as client:
        for _ in range(200):
            samples = await scrape(env, client)
            sent = value(samples, "meterline_webhook_attempts_total", outcome="succeeded")
            swept = value(samples, "meterline_job_duration_seconds_count", job="outbox_sweeper")
            if sent and swept:
                break
            await asyncio.sleep(0.05)
        assert sent == 1
        assert swept is not None and swept >= 1  # the sweeper's run at startup, at least
    assert len(receiver.received) == 1


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield client


# --- the metrics token --------------------------------------------------------------------


async def test_the_metrics_token_is_required_when_set(env: Env) -> None:
    settings = Settings(
        database_url=env.backend.database_url,
        redis_url=env.backend.redis_url,
        metrics_token="scrape-me",
    )
    async with running(create_app(settings, env.clock)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "meterline_" not in refused.text
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert allowed.status_code == 200
        assert "meterline_ingest_events_total" in allowed.text


# --- request ids ------------------------------------------------------------------------


async def test_a_sane_request_id_is_echoed(env: Env) -> None:
    given = "req-2026.04_10-" + "x" * 85  # 100 characters
    response = await env.client.get("/healthz", headers={"X-Request-Id": given})
    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [None, "", "x" * 101, "has space", "semi;colon", "ünïcode", "a/b"],
    ids=["absent", "empty", "too-long", "space", "semicolon", "non-ascii", "slash"],
)
async def test_a_missing_or_bad_request_id_is_replaced(env: Env, given: str | None) -> None:
    headers = {} if given is None else {"X-Request-Id": given.encode()}
    responses = [await env.client.get("/healthz", headers=headers) for _ in range(2)]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert ids[0] != ids[1]


async def test_error_responses_carry_the_request_id(env: Env) -> None:
    response = await env.client.post(
        "/v1/ingest", json=[event("a")], headers={"X-Request-Id": "abc"}
    )
    assert (response.status_code, response.headers["x-request-id"]) == (401, "abc")


# --- JSON logs ----------------------------------------------------------------------------


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


async def test_json_logs_carry_the_request_id_and_extra_fields(lines: Lines) -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        logging.getLogger("tests.observability").info(
            "handled %s",
            "it",
            extra={
                "customer": "c1",
                "at": datetime(2026, 1, 1, tzinfo=UTC),
                "amount": Decimal("1.50"),
            },
        )
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)], middleware=[Middleware(RequestIdMiddleware)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        given = await client.get("/", headers={"X-Request-Id": "trace-1", "Authorization": "k"})
        made = await client.get("/")
    logging.getLogger("tests.observability").warning("outside")
    first, second, outside = lines.lines
    assert set(first) == {
        "ts",
        "level",
        "logger",
        "message",
        "request_id",
        "customer",
        "at",
        "amount",
    }
    assert first["message"] == "handled it"
    assert (first["level"], first["logger"]) == ("INFO", "tests.observability")
    assert first["request_id"] == given.headers["x-request-id"] == "trace-1"
    assert (first["customer"], first["at"], first["amount"]) == (
        "c1",
        "2026-01-01T00:00:00+00:00",
        "1.50",
    )
    assert datetime.fromisoformat(first["ts"].replace("Z", "+00:00")) - datetime.now(
        UTC
    ) < timedelta(minutes=1)
    assert second["request_id"] == made.headers["x-request-id"]
    assert outside["request_id"] is None
    assert "Authorization" not in json.dumps(lines.lines) and '"k"' not in json.dumps(lines.lines)


def test_exceptions_are_logged_as_text_in_the_object(lines: Lines) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.observability").exception("failed")
    (line,) = lines.lines
    assert line["message"] == "failed"
    assert "ValueError: boom" in line["exc_info"]


def test_json_format_routes_every_log_to_one_json_stream(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_level = root.level
    uvicorn_loggers = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level, lg.disabled) for lg in uvicorn_loggers]
    try:
        for lg in uvicorn_loggers:  # as uvicorn leaves them (other tests may not)
            lg.setLevel(logging.INFO)
            lg.disabled = False
        configure_logging("json")
        configure_logging("json")  # idempotent: one handler
        marker = uuid.uuid4().hex
        logging.getLogger("uvicorn.access").info('%s - "GET /%s HTTP/1.1" 200', "1.2.3.4", marker)
        logging.getLogger("meterline.anything").info("hello %s", marker)
        written = [json.loads(x) for x in capsys.readouterr().err.splitlines() if marker in x]
        assert [w["logger"] for w in written] == ["uvicorn.access", "meterline.anything"]
        configure_logging("text")
        logging.getLogger("meterline.anything").info("quiet %s", marker)
        assert marker not in capsys.readouterr().err
    finally:
        configure_logging("text")
        root.setLevel(saved_level)
        for lg, handlers, propagate, level, disabled in saved:
            lg.handlers[:] = handlers
            lg.propagate, lg.level, lg.disabled = propagate, level, disabled
