"""Secrets (SPEC §9): API keys and customer tokens are stored only as hashes (no database
column and no Redis key or value holds one), and never logged: a session of real requests
over a real uvicorn (ingest, GraphQL, a websocket's ``connection_init``, failing
requests, 401s, a customer-token mint, the embed demo page) with every logger at DEBUG,
uvicorn's access log on, in the text and the JSON log formats, leaves no secret (nor any
12 characters of one's never-shown part) in what is logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from meterline.observability import JsonFormatter, configure_logging
from models.tables import metadata
from tests.api.live import request, serving, session
from tests.api.support import auth, customer, data
from tests.conftest import Env

CLIENT_LOGGERS = ("gql", "websockets.client", "httpx", "httpcore")  # the tests' own side
WINDOW = 12


def hidden_parts(secret: str) -> list[str]:
    """Every ``WINDOW`` characters of the part of ``secret`` never shown (an API key's
    first 16 characters are its display prefix; a token is never shown again)."""
    hidden = (
        secret[16:]
        if secret.startswith("ml_live_") or secret.startswith("ml_test_")
        else secret[6:]
    )
    return [hidden[i : i + WINDOW] for i in range(len(hidden) - WINDOW + 1)]


def leaks(text: str, secrets_: dict[str, str]) -> dict[str, list[str]]:
    """Per secret, the parts of it found in ``text``."""
    found = {}
    for name, secret in secrets_.items():
        parts = [secret] if secret in text else [p for p in hidden_parts(secret) if p in text]
        if parts:
            found[name] = parts[:3]
    return found


@pytest.fixture
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG for the test (the tests' own clients silenced); the logging
    configuration is restored afterwards."""
    manager = logging.Logger.manager
    known = [n for n, x in manager.loggerDict.items() if isinstance(x, logging.Logger)]
    names = ["", "uvicorn", "uvicorn.access", "uvicorn.error", *known, *CLIENT_LOGGERS]
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
    caplog.set_level(logging.DEBUG)
    for name in names:
        client = any(name == c or name.startswith(f"{c}.") for c in CLIENT_LOGGERS)
        logging.getLogger(name).setLevel(logging.CRITICAL + 1 if client else logging.DEBUG)
    try:
        yield caplog
    finally:
        configure_logging("text")  # drops the JSON handler, if any
        for name, (level, handlers, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


def served_with_debug_logs(env: Env, log_format: str) -> AbstractAsyncContextManager[str]:
    """The app behind uvicorn as ``meterline serve`` runs it (uvicorn's logging, then the
    app's), at DEBUG with the access log; ``host:port``."""
    return serving(env.app, log_level="debug", then_configure=lambda: configure_logging(log_format))


CREATE_KEY = """mutation { createApiKey(input: {scopes: ["admin"], name: "ops"}) {
  secret apiKey { id } } }"""
MINT = """mutation($c: ID!) { createCustomerToken(input: {customerId: $c}) { token } }"""
CUSTOMER = "query($c: ID!) { customer(id: $c) { id draftInvoices { total } } }"
DRAFTS = "subscription($c: ID!) { draftInvoiceUpdated(customerId: $c) { total } }"


async def session_of_requests(env: Env, host: str) -> dict[str, str]:
    """Requests of every kind, over the network; returns every secret they used."""
    customer_id = await customer(env, "Acme", ["acme"])
    wrong_key = f"ml_live_{secrets.token_urlsafe(32)}"
    wrong_token = f"ml_ct_{secrets.token_urlsafe(32)}"
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:

        async def graphql(query: str, key: str, **variables: Any) -> Any:
            body = {"query": query, "variables": variables}
            return (await http.post("/graphql", json=body, headers=auth(key))).json()

        created = (await graphql(CREATE_KEY, env.admin_key))["data"]["createApiKey"]
        token = (await graphql(MINT, env.admin_key, c=customer_id))["data"]
        token = token["createCustomerToken"]["token"]
        event = {
            "transaction_id": "tx-1",
            "customer_id": "acme",
            "event_type": "llm",
            "timestamp": "2026-04-10T11:00:00Z",
            "properties": {"tokens": 5},
        }
        ok = await http.post("/v1/ingest", json=[event], headers=auth(env.ingest_key))
        assert ok.status_code == 200, ok.text
        for key in (wrong_key, wrong_token, env.read_key):  # 401, 401, 403
            refused = await http.post("/v1/ingest", json=[event], headers=auth(key))
            assert refused.status_code in (401, 403), refused.text
        broken = await http.post("/v1/ingest", content=b"{not json", headers=auth(env.ingest_key))
        assert broken.status_code == 400
        assert "errors" not in await graphql(CUSTOMER, token, c=customer_id)
        assert "errors" not in await graphql(CUSTOMER, created["secret"], c=customer_id)
        for key in (wrong_key, wrong_token):
            refused = await graphql(CUSTOMER, key, c=customer_id)
            assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        invalid = await graphql("{ nope }", env.admin_key)
        assert invalid["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        page = await http.get("/embed/demo", params={"token": token})
        assert page.status_code == 200
        assert (await http.get("/embed/demo", params={"token": wrong_token})).status_code == 401
    for key in (env.admin_key, token):
        async with session(host, key) as opened:
            stream = opened.subscribe(request(DRAFTS, c=customer_id))
            await asyncio.wait_for(anext(stream), 10)
            await stream.aclose()
    with contextlib.suppress(Exception):  # refused at connection_init
        async with session(host, wrong_key):
            pass
    return {
        "admin key": env.admin_key,
        "ingest key": env.ingest_key,
        "read key": env.read_key,
        "created key": created["secret"],
        "customer token": token,
        "wrong key": wrong_key,
        "wrong token": wrong_token,
    }


def logged(caplog: pytest.LogCaptureFixture, captured: pytest.CaptureFixture[str]) -> str:
    """Everything logged: each record as text (message, exception, stack) and as the JSON
    formatter writes it, and what the handlers wrote to stdout/stderr."""
    plain = logging.Formatter("%(levelname)s %(name)s %(message)s")
    as_json = JsonFormatter()
    lines = []
    for record in caplog.records:
        lines.append(plain.format(record))
        lines.append(as_json.format(record))
    out, err = captured.readouterr()
    return "\n".join([*lines, out, err])


@pytest.mark.parametrize(
    "log_format",
    ["text", pytest.param("json", marks=pytest.mark.settings(log_format="json"))],
)
async def test_no_secret_is_ever_logged(
    env: Env,
    debug_everywhere: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    log_format: str,
) -> None:
    async with served_with_debug_logs(env, log_format) as host:
        for name in ("uvicorn", "uvicorn.access"):  # they do not propagate in text mode
            if not logging.getLogger(name).propagate:
                logging.getLogger(name).addHandler(debug_everywhere.handler)
        used = await session_of_requests(env, host)
    text = logged(debug_everywhere, capsys)
    assert "/embed/demo" in text and "/v1/ingest" in text  # the access log was on
    assert "Bearer …" in text  # the websocket frames were logged (DEBUG), redacted
    assert leaks(text, used) == {}


async def test_keys_and_tokens_are_stored_only_as_hashes(env: Env) -> None:
    """No column of any table, and no Redis key or value, holds a secret or a part of one
    (after requests that use them all, so last-use times and rate limits are written)."""
    customer_id = await customer(env, "Acme", ["acme"])
    created = (await data(env, CREATE_KEY))["createApiKey"]
    token = (await data(env, MINT, c=customer_id))["createCustomerToken"]["token"]
    for key in (env.read_key, created["secret"], token):
        assert (
            "errors"
            not in (
                await env.client.post(
                    "/graphql",
                    json={"query": CUSTOMER, "variables": {"c": customer_id}},
                    headers=auth(key),
                )
            ).json()
        )
    used = {
        "admin key": env.admin_key,
        "ingest key": env.ingest_key,
        "read key": env.read_key,
        "created key": created["secret"],
        "customer token": token,
    }
    rows = []
    async with env.read() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                rows.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    assert leaks("\n".join(rows), used) == {}
    stored = []
    async for name in env.redis.scan_iter(count=1000):
        stored.append(repr(name))
        kind = (await env.redis.type(name)).decode()
        if kind == "string":
            stored.append(repr(await env.redis.get(name)))
        elif kind == "hash":
            stored.append(repr(await env.redis.hgetall(name)))
    assert any("meterline:rate:" in s for s in stored)  # the buckets, keyed by hashes
    assert leaks("\n".join(stored), used) == {}
