"""``METERLINE_ENV=production``, read from the environment as a deployment sets it: no
introspection however it is asked for (aliased, in a fragment, over GET), no GraphiQL,
no embed demo page, Starlette's debug off (an unexpected error is a bare 500) and an
unexpected GraphQL error masked as INTERNAL without any of its internals, but logged.

tests/api/test_graphql_hardening.py covers the plain introspection queries, GraphiQL and
field suggestions with ``Settings(env="production")``; tests/api/test_embed.py the demo
page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from meterline.app import create_app
from meterline.clock import FixedClock
from meterline.settings import Settings
from models.store.api_keys import create_api_key
from models.store.organizations import get_or_create_organization
from models.store.webhook_messages import messages
from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from tests.api.support import auth
from tests.conftest import START, Backend


@dataclass
class Deployed:
    app: Starlette
    client: httpx.AsyncClient
    key: str
    org_id: str

    async def graphql(self, query: str, **variables: Any) -> httpx.Response:
        body = {"query": query, "variables": variables}
        return await self.client.post("/graphql", json=body, headers=auth(self.key))


@pytest.fixture
async def deployed(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployed]:
    """The app as a deployment starts it: ``METERLINE_ENV=production`` in the environment."""
    monkeypatch.setenv("METERLINE_ENV", "production")
    settings = Settings(database_url=backend.database_url, redis_url=backend.redis_url)
    assert settings.is_production
    clock = FixedClock(START)
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        async with app.state.services.db.write() as conn:
            org_id = await get_or_create_organization(conn, "Production", clock())
            _, key = await create_api_key(conn, org_id, ["admin"], clock())
        # raise_app_exceptions=False: see what a client gets when the app fails
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterline") as client:
            yield Deployed(app, client, key, org_id)


INTROSPECTION = {
    "aliased": "{ a: __schema { queryType { name } } }",
    "in a fragment": "query { ...F } fragment F on Query { __schema { types { name } } }",
    "type by alias": '{ t: __type(name: "Customer") { fields { name } } }',
    "nested in a field": "{ organization { id __type: __typename } __schema { types { name } } }",
}


@pytest.mark.parametrize("name", list(INTROSPECTION))
async def test_introspection_is_refused_however_it_is_asked(deployed: Deployed, name: str) -> None:
    query = INTROSPECTION[name]
    for response in (
        await deployed.graphql(query),
        await deployed.client.get("/graphql", params={"query": query}, headers=auth(deployed.key)),
    ):
        body = response.json()
        assert body.get("data") is None, body
        assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_REQUEST"}
        assert any("introspection" in e["message"].lower() for e in body["errors"]), body
        assert '"name":"Query"' not in response.text.replace(" ", "")  # nothing of the schema


async def test_no_graphiql_and_no_demo_page(deployed: Deployed) -> None:
    for accept in ("text/html", "*/*"):
        page = await deployed.client.get("/graphql", headers={"accept": accept})
        assert "graphiql" not in page.text.lower()
        assert page.status_code in (400, 404), (accept, page.status_code)
    demo = await deployed.client.get("/embed/demo", params={"token": "ml_ct_x"})
    assert demo.status_code == 404


async def test_starlette_debug_is_off_so_a_crash_is_a_bare_500(deployed: Deployed) -> None:
    assert deployed.app.debug is False

    async def crash(_: Request) -> Response:
        raise RuntimeError("secret internals: /srv/meterline/db.py line 42")

    deployed.app.add_route("/crash", crash)
    response = await deployed.client.get("/crash", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


async def test_an_unexpected_graphql_error_is_internal_masked_and_logged(
    deployed: Deployed, caplog: pytest.LogCaptureFixture
) -> None:
    """A message whose stored body is not JSON (a corrupt row) makes reading it fail in a
    way no code expects: the client gets INTERNAL and ``Unexpected error.``, nothing of
    the exception; the log gets the exception."""
    async with deployed.app.state.services.db.write() as conn:
        event = WebhookEvent("customer.created", {"customer_id": "c1", "name": "C"}, None)
        message_id = await Outbox().emit(conn, deployed.org_id, event, START)
        await conn.execute(
            update(messages).where(messages.c.id == message_id).values(body="{corrupt")
        )
    caplog.set_level(logging.ERROR, logger="meterline.graphql")
    query = "query($id: ID!) { webhookMessage(id: $id) { id payload } }"
    response = await deployed.graphql(query, id=message_id)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "INTERNAL"}
    assert error["message"] == "Unexpected error."
    assert set(error) <= {"message", "extensions", "locations", "path"}
    for internal in ("corrupt", "JSONDecode", "orjson", "Traceback", ".py", "char "):
        assert internal not in response.text, internal
    (logged,) = [r for r in caplog.records if r.name == "meterline.graphql"]
    assert logged.exc_info is not None  # the operator sees what happened
