"""What a customer's browser gets from the server: the embed module and the demo page
(issue 7), and the CORS answers that let a page on another origin load and use them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.observability import redact_credentials_in_logs
from meterline.settings import Settings
from models.store.api_keys import create_api_key, create_customer_token
from models.store.organizations import get_or_create_organization
from tests.api.support import customer, data, metric
from tests.conftest import START, Backend, Env

MINT = """mutation($input: CreateCustomerTokenInput!) {
  createCustomerToken(input: $input) { token customerId } }"""
SHOP = "https://shop.example"


async def minted(env: Env) -> tuple[str, str]:
    """(customer id, a customer token for it)."""
    customer_id = await customer(env)
    found = await data(env, MINT, input={"customerId": customer_id})
    return customer_id, found["createCustomerToken"]["token"]


async def test_the_module_is_served_as_javascript_to_any_origin(env: Env) -> None:
    answer = await env.client.get("/embed/meterline-embed.js", headers={"origin": SHOP})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "meterline-draft-invoice" in answer.text


async def test_a_page_on_another_origin_may_call_the_api_with_a_bearer_token(env: Env) -> None:
    preflight = await env.client.options(
        "/graphql",
        headers={
            "origin": SHOP,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers  # no cookies, ever


async def test_the_demo_page_shows_the_components_for_the_token_customer(env: Env) -> None:
    metric_id = await metric(env)
    customer_id, token = await minted(env)
    page = await env.client.get("/embed/demo", params={"token": token})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    for element in ("meterline-usage", "meterline-draft-invoice", "meterline-budget"):
        assert f"<{element}" in page.text
    assert f'customer-id="{customer_id}"' in page.text
    assert f'metric-id="{metric_id}"' in page.text
    assert "{{" not in page.text  # every placeholder filled


async def test_the_demo_page_takes_a_customer_token_only(env: Env) -> None:
    for refused in (None, "", env.admin_key, env.read_key, "ml_ct_unknown"):
        params = {} if refused is None else {"token": refused}
        page = await env.client.get("/embed/demo", params=params)
        assert page.status_code == 401, refused
        assert page.json()["error"]["code"] == "unauthenticated"
        assert env.admin_key not in page.text


async def test_the_demo_page_escapes_what_it_shows(env: Env) -> None:
    hostile = 'model"><script>alert(1)</script>'
    filters = [{"name": "tokens", "exists": True}, {"name": hostile, "exists": True}]
    await metric(env, groupKeys=[[hostile]], propertyFilters=filters, name="Hostile")
    _, token = await minted(env)
    page = await env.client.get("/embed/demo", params={"token": token})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert 'group-key="model&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text


def test_tokens_in_addresses_never_reach_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/embed/demo?token=ml_ct_secret&x=1", "1.1", 200),
        None,
    )
    redact_credentials_in_logs()
    assert logging.getLogger("uvicorn.access").filter(record)  # kept, with the token masked
    assert "ml_ct_secret" not in record.getMessage()
    assert "/embed/demo?token=…&x=1" in record.getMessage()


async def test_only_the_api_and_the_module_answer_other_origins(env: Env) -> None:
    for path in ("/v1/ingest", "/webhooks/stripe"):
        preflight = await env.client.options(
            path, headers={"origin": SHOP, "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers, path


@pytest.fixture
async def production(backend: Backend) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The app as deployed, with its origins listed: (client, a customer token)."""
    clock = FixedClock(START)
    settings = Settings(
        env="production",
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        cors_allowed_origins=[SHOP],
    )
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        async with app.state.services.db.write() as conn:
            org_id = await get_or_create_organization(conn, "Production", clock())
            _, key = await create_api_key(conn, org_id, ["admin"], clock())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            made = await client.post(
                "/graphql",
                json={"query": 'mutation { createCustomer(input: {name: "P"}) { id } }'},
                headers={"authorization": f"Bearer {key}"},
            )
            customer_id = made.json()["data"]["createCustomer"]["id"]
            async with app.state.services.db.write() as conn:
                token, _ = await create_customer_token(
                    conn, org_id, customer_id, timedelta(hours=1), clock(), actor="test"
                )
            yield client, token


async def test_production_serves_no_demo_page_and_only_its_origins(
    production: tuple[httpx.AsyncClient, str],
) -> None:
    client, token = production
    page = await client.get("/embed/demo", params={"token": token})
    assert page.status_code == 404
    assert (await client.get("/embed/meterline-embed.js")).status_code == 200
    listed = await client.get("/embed/meterline-embed.js", headers={"origin": SHOP})
    assert listed.headers["access-control-allow-origin"] == SHOP
    other = await client.get(
        "/embed/meterline-embed.js", headers={"origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
