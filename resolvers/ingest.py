"""``POST /v1/ingest`` (SPEC §1): judge each event, commit, then report each one."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from billing.events import Rejection, storable, validate_event
from billing.metering import UsageEvent
from models.store.api_keys import record_use
from models.store.ingest import BatchOutcome, record_batch
from notifications.outbox import Outbox
from notifications.pubsub import Topic
from resolvers.http import HttpError, error_response, json_response, read_body, require_key
from resolvers.services import services_of

MAX_EVENTS = 100


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """A JSON array of 1–100 objects; numbers decode to exact ``Decimal``."""
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
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
            "code": "unknown_customer",
            "message": f"no customer has the id or ingest alias {raw[i]['customer_id']!r}; "
            "the event is stored and will count once a customer claims it",
        }
        for i in outcome.unknown_customer
    ] + [
        {
            "index": i,
            "transaction_id": tx(i),
            "code": "no_matching_metric",
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


async def ingest(request: Request) -> Response:
    services = services_of(request)
    try:
        principal = await require_key(request, services, "ingest")
        raw = parse_batch(await read_body(request, services.max_body_bytes))
    except HttpError as error:
        return error_response(error)
    now = services.clock()
    valid: list[tuple[int, UsageEvent]] = []
    rejected: list[tuple[int, Rejection]] = []
    for index, item in enumerate(raw):
        judged = validate_event(item, now)
        if isinstance(judged, Rejection):
            rejected.append((index, judged))
        else:
            valid.append((index, judged))
    outbox = Outbox()
    async with services.db.write() as conn:
        await record_use(conn, principal, now)
        outcome = await record_batch(conn, principal.org_id, valid, now)
        await outbox.evaluate(conn, principal.org_id, outcome.customers, now)
        outbox.push(principal.org_id, (Topic.USAGE,), outcome.customers)
    await outbox.dispatch(services.redis)
    return json_response(report(raw, rejected, outcome))
