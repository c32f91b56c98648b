"""The webhook receiver of ``bench/deliveries.py``: a bare ASGI app under uvicorn.

``POST`` anywhere answers ``200`` with an empty body and counts the arrival (CLOCK_MONOTONIC,
comparable across processes on Linux); the first few arrivals keep their body and headers
so the benchmark can verify their signatures. ``GET /stats`` returns the count, the first
and last arrival and the samples; ``POST /reset`` starts over; ``GET /readyz`` is 200.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

SAMPLES = 5
state: dict[str, Any] = {"count": 0, "first": None, "last": None, "samples": []}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = b""
    if scope["method"] == "GET" and scope["path"] == "/stats":
        answer = orjson.dumps(state)
    elif scope["method"] == "POST" and scope["path"] == "/reset":
        state.update(count=0, first=None, last=None, samples=[])
    elif scope["method"] == "POST":
        at = time.monotonic()
        state["count"] += 1
        state["last"] = at
        if state["first"] is None:
            state["first"] = at
        if len(state["samples"]) < SAMPLES:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            state["samples"].append({"body": body.decode(), "headers": headers})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})
