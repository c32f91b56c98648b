"""``POST /v1/ingest`` (SPEC §1): judge each event, commit, then report each one."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from billing.events import Rejection, storable, validate_event
from billing.metering import UsageEvent
from models.db import Database
from models.store.api_keys import Principal, record_use
from models.store.ingest import BatchOutcome, record_batch
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from resolvers.http import HttpError, error_response, json_response, read_body, require_key
from resolvers.services import services_of

MAX_EVENTS = 100
UNKNOWN_CUSTOMER = "unknown_customer"
NO_MATCHING_METRIC = "no_matching_metric"
OUTCOME_STATE = "ingest_outcome"
"""Where a request's tally is left (``request.state``) for the metrics middleware:
``{"accepted": n, "duplicate": n, "rejected": n, "warning": n}`` (warnings are also
accepted)."""


def decode_json(text: str | bytes) -> Any:
    """JSON with exact numbers: decimals decode to ``Decimal``; NaN and Infinity are
    refused (``ValueError``)."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """A JSON array of 1–100 objects; numbers decode to exact ``Decimal``."""
    try:
        data = decode_json(body)
    except (ValueError, RecursionError) as error:
        raise HttpError(400, "invalid_body", f"the body is not valid JSON: {error}") from error
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_EVENTS:
        raise HttpError(400, "invalid_body", "the body must be a JSON array of 1 to 100 events")
    if not all(isinstance(item, dict) for item in data):
        raise HttpError(400, "invalid_body", "every event must be a JSON object")
    return data


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def report(
    raw: list[dict[str, Any]], rejected: list[tuple[int, Rejection]], outcome: BatchOutcome
) -> dict[str, Any]:
    def tx(index: int) -> Any:
        value = raw[index].get("transaction_id")
        return value if isinstance(value, str) and storable(value) else None

    warnings = [
        {
            "index": i,
            "transaction_id": tx(i),
            "code": UNKNOWN_CUSTOMER,
            "message": f"no customer has the id or ingest alias {raw[i]['customer_id']!r}; "
            "the event is stored and will count once a customer claims it",
        }
        for i in outcome.unknown_customer
    ] + [
        {
            "index": i,
            "transaction_id": tx(i),
            "code": NO_MATCHING_METRIC,
            "message": "the event is stored but matches no billable metric",
        }
        for i in outcome.unmatched
    ]
    warnings.sort(key=lambda w: w["index"])
    return {
        "accepted": len(outcome.accepted),
        "duplicates": [tx(i) for i in outcome.duplicates],
        "rejected": [
            {"index": i, "transaction_id": tx(i), "code": r.code, "message": r.message}
            for i, r in rejected
        ],
        "warnings": warnings,
    }


def judge(
    items: Iterable[tuple[int, dict[str, Any] | Rejection]], now: datetime
) -> tuple[list[tuple[int, UsageEvent]], list[tuple[int, Rejection]]]:
    """(valid events, rejections), each with its position; an item may arrive already
    rejected (a line a file reader could not read)."""
    valid: list[tuple[int, UsageEvent]] = []
    rejected: list[tuple[int, Rejection]] = []
    for index, item in items:
        judged = item if isinstance(item, Rejection) else validate_event(item, now)
        if isinstance(judged, Rejection):
            rejected.append((index, judged))
        else:
            valid.append((index, judged))
    return valid, rejected


async def store_events(
    db: Database,
    org_id: str,
    valid: list[tuple[int, UsageEvent]],
    now: datetime,
    *,
    principal: Principal | None = None,
) -> tuple[BatchOutcome, Outbox]:
    """Store judged events in one transaction (with the key's use, for the API), asking
    in it for the evaluation of the customers' alerts; the outbox (those jobs, the usage
    pushes) is to be dispatched after the commit. The one way events are stored: the API
    and ``meterline import``."""
    outbox = Outbox()
    async with db.write() as conn:
        if principal is not None:
            await record_use(conn, principal, now)
        outcome = await record_batch(conn, org_id, valid, now)
        await outbox.evaluate(conn, org_id, outcome.customers, now)
        outbox.push(org_id, (Topic.USAGE,), outcome.customers)
    return outcome, outbox


async def ingest(request: Request) -> Response:
    services = services_of(request)
    try:
        principal = await require_key(request, services, "ingest")
        raw = parse_batch(await read_body(request, services.max_body_bytes))
    except HttpError as error:
        return error_response(error)
    now = services.clock()
    valid, rejected = judge(enumerate(raw), now)
    outcome, outbox = await store_events(
        services.db, principal.org_id, valid, now, principal=principal
    )
    await outbox.dispatch(services.redis)
    body = report(raw, rejected, outcome)
    tally = {
        "accepted": body["accepted"],
        "duplicate": len(body["duplicates"]),
        "rejected": len(body["rejected"]),
        "warning": len(body["warnings"]),
    }
    setattr(request.state, OUTCOME_STATE, tally)
    return json_response(body)
