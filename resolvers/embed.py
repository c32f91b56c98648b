"""The embeddable web components for customers' browsers (``frontend_snippets/``): the
module itself, and a demo page showing them for the customer a token sees."""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from models.store.api_keys import authenticate
from models.store.metrics import list_metrics
from resolvers.http import HttpError, error_response
from resolvers.services import services_of

SNIPPETS = Path(__file__).resolve().parents[1] / "frontend_snippets"
MODULE = SNIPPETS / "meterline-embed.js"
DEMO_PAGE = SNIPPETS / "demo.html"


async def embed_module(request: Request) -> Response:
    """``GET /embed/meterline-embed.js``: the dependency-free ES module."""
    return FileResponse(
        MODULE,
        media_type="text/javascript; charset=utf-8",
        headers={"cache-control": "public, max-age=300"},
    )


async def demo_page(request: Request) -> Response:
    """``GET /embed/demo?token=…``: the three components for the token's customer (its
    organization's first metric charted by its first group key). A customer token only:
    an API key has no place in a browser. Not served in production."""
    services = services_of(request)
    token = request.query_params.get("token", "")
    try:
        if services.production:
            raise HttpError(404, "not_found", "the demo page is off in production")
        async with services.db.read() as conn:
            principal = await authenticate(conn, token, services.clock())
            if principal is None or principal.customer_id is None:
                raise HttpError(
                    401,
                    "unauthenticated",
                    "open the demo with ?token=<customer token> (createCustomerToken); "
                    "an API key is never put in a page",
                )
            metrics = await list_metrics(conn, principal.org_id)
    except HttpError as error:
        return error_response(error)
    metric = metrics[0].definition if metrics else None
    group_keys = metric.group_keys if metric is not None else ()
    values = {
        "TOKEN": token,
        "CUSTOMER_ID": principal.customer_id,
        "METRIC_ID": metric.id if metric is not None else "",
        "GROUP_KEY": group_keys[0][0] if group_keys else "",
        "ENDPOINT": "/graphql",
    }
    page = DEMO_PAGE.read_text()
    for name, value in values.items():
        page = page.replace("{{" + name + "}}", html.escape(value, quote=True))
    return HTMLResponse(
        page,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )
