"""The bare endpoint of ``bench/raw_limits.py``: Starlette under uvicorn, nothing else.

``POST /v1/ingest`` reads the body and decodes it exactly as ``resolvers.ingest.parse_batch``
does (stdlib ``json`` with ``Decimal`` numbers), checks it is an array of 1–100 objects and
answers the ingest report's shape with every event accepted: no auth, no validation, no
database, no Redis. Served with ``uvicorn bare_app:app --app-dir bench`` and the same
(default) uvicorn settings as the product, it is what HTTP + JSON cost on this machine.
"""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def ingest(request: Request) -> Response:
    events = json.loads(await request.body(), parse_float=Decimal)
    if not isinstance(events, list) or not 1 <= len(events) <= 100:
        return Response(b'{"error": "invalid_body"}', 400, media_type="application/json")
    if not all(isinstance(event, dict) for event in events):
        return Response(b'{"error": "invalid_body"}', 400, media_type="application/json")
    body = {"accepted": len(events), "duplicates": [], "rejected": [], "warnings": []}
    return Response(orjson.dumps(body), media_type="application/json")


async def ready(_: Request) -> Response:
    return Response(b'{"status": "ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/v1/ingest", ingest, methods=["POST"]), Route("/readyz", ready)],
)
