"""``POST /webhooks/stripe`` (SPEC §11): Stripe's payment events, verified with the
organizations' Stripe signing secrets."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from integrations.stripe_events import apply_event, read_event
from resolvers.http import HttpError, error_response, json_response, read_body
from resolvers.services import services_of


async def stripe_webhook(request: Request) -> Response:
    """200 ``{"received": true, "outcome": …}`` for a verified event (a duplicate or an
    event Meterline does not follow too, so Stripe stops resending it); 400 when the
    ``Stripe-Signature`` header does not verify the body with any signing secret."""
    services = services_of(request)
    try:
        body = await read_body(request, services.max_body_bytes)
        events = await read_event(services.db, body, request.headers.get("stripe-signature"))
        if not events:
            raise HttpError(
                400,
                "invalid_signature",
                "the Stripe-Signature header does not verify this body with any Stripe "
                "webhook signing secret set up here (setStripeSettings)",
            )
    except HttpError as error:
        return error_response(error)
    outcome = await apply_event(services.db, services.redis, services.clock, events)
    return json_response({"received": True, "event_id": events[0].id, "outcome": outcome})
