"""Receivers that misbehave, each handled as SPEC §10 says, through the real delivery jobs
(ARQ on Redis, the database, the outbox sweeper) and a real local HTTP receiver
(tests/api/receiver.py):

- too slow (answers after the attempt timeout) and ``500``: a failed attempt is logged
  (status or error, duration, the first 4 KiB of the body) and retried on the schedule
  (each delay within its step ± 20 %) with the same ``webhook-id``;
- ``429`` / ``503`` with ``Retry-After`` (seconds, and the HTTP-date form): the next attempt
  is at the time asked for when it is within the schedule step's bounds, else at the
  nearest bound, and not before;
- ``410 Gone``: the endpoint is disabled at once (no retry, nothing more sent to it) and
  ``webhook_endpoint.disabled`` is emitted;
- redirects (301, 302, 307, to another path, another server, or the cloud metadata
  address): never followed (the target receives nothing); the attempt is a failure,
  retried.

The test clock stays before the wall clock, so the retry jobs ARQ defers by wall time run
at once and find their delivery not yet due; a test moves the clock to the time the
database says and runs the outbox sweeper, as production does once Redis's job is due.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from notifications.catalog import WebhookEvent
from notifications.outbox import Outbox
from notifications.retry import DEFAULT_SCHEDULE, JITTER
from notifications.sender import MAX_RESPONSE_BYTES
from tests.api.receiver import Receiver, Reply, receiver_fixture, serve
from tests.api.support import data, failure
from tests.api.worker_support import at, ctx_of, messages
from tests.conftest import Env
from tests.figures import record
from workers.deliver import outbox_sweeper

receiver = receiver_fixture

CREATE = """mutation($url: String!) {
  createWebhookEndpoint(input: {url: $url}) { id } }"""
LOG = """{ webhookMessages(first: 100) { nodes { id type deliveries {
  id endpointId status attempts nextAttemptAt
  attemptLog { attemptedAt statusCode durationMs responseBody error } } } } }"""
ENDPOINT = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason } }"
BIG_BODY = ("0123456789abcdef" * 640).encode()  # 10 KiB: only the first 4 KiB are logged


@pytest.fixture
def elsewhere() -> Iterator[Receiver]:
    """A second receiver: where redirects point (it must never be reached)."""
    yield from serve(Receiver())


async def figures(env: Env, expected_failed: int = 0, **counts: int) -> None:
    """Record this test's figures: its messages and deliveries as stored, and ``lost``:
    deliveries neither succeeded nor failed as the test meant (``expected_failed``)."""
    nodes = (await data(env, LOG))["webhookMessages"]["nodes"]
    found = [d for m in nodes for d in m["deliveries"]]
    succeeded = sum(d["status"] == "SUCCEEDED" for d in found)
    failed = sum(d["status"] == "FAILED" for d in found)
    assert failed == expected_failed
    record(
        f"webhook receiver faults [{env.backend.name}]",
        messages_emitted=len(nodes),
        deliveries=len(found),
        delivered=succeeded,
        failed_as_specified=failed,
        attempts=sum(len(d["attemptLog"]) for d in found),
        lost=len(found) - succeeded - failed,
        **counts,
    )


async def endpoints(env: Env, receiver: Receiver, *paths: str) -> dict[str, str]:
    """An endpoint per path of the receiver: path -> endpoint id."""
    found = {}
    for path in paths:
        created = await data(env, CREATE, url=receiver.at(path))
        found[path] = created["createWebhookEndpoint"]["id"]
    return found


async def emit(env: Env, count: int = 1) -> list[str]:
    """``count`` messages for every endpoint, written and enqueued as a change would."""
    outbox = Outbox()
    ids = []
    async with env.write() as conn:
        for n in range(count):
            event = WebhookEvent("customer.created", {"customer_id": f"c{n}", "name": "C"}, None)
            ids.append(await outbox.emit(conn, env.org_id, event, env.clock()))
    await outbox.dispatch(env.redis)
    return ids


async def deliveries(env: Env) -> dict[str, dict[str, Any]]:
    """The deliveries of the ``customer.created`` messages, by endpoint id."""
    nodes = (await data(env, LOG))["webhookMessages"]["nodes"]
    found = [d for m in nodes if m["type"] == "customer.created" for d in m["deliveries"]]
    return {d["endpointId"]: d for d in found}


async def due_now(env: Env, when: datetime) -> int:
    """Move the clock to ``when`` and run what the sweeper finds due; returns how many."""
    env.clock.set(when)
    swept = await outbox_sweeper(ctx_of(env))
    await env.run_jobs()
    return swept


def whole_second_after(moment: datetime) -> datetime:
    return moment.replace(microsecond=0) + timedelta(seconds=1 if moment.microsecond else 0)


def within_step(delivery: dict[str, Any], step: int) -> timedelta:
    """The delay from the last attempt to the next; asserts it is within the schedule's
    ``step`` (1-based) ± the jitter."""
    last = at(delivery["attemptLog"][-1]["attemptedAt"])
    delay = at(delivery["nextAttemptAt"]) - last
    scheduled = DEFAULT_SCHEDULE[step - 1]
    assert scheduled * (1 - JITTER) <= delay <= scheduled * (1 + JITTER), (step, delay)
    return delay


def webhook_ids(arrivals: list[tuple[bytes, dict[str, str]]]) -> set[str]:
    return {headers["webhook-id"] for _, headers in arrivals}


async def test_a_receiver_slower_than_the_timeout_fails_the_attempt_and_is_retried(
    env: Env, receiver: Receiver
) -> None:
    env.webhooks = replace(env.webhooks, schedule=DEFAULT_SCHEDULE, timeout=0.5)
    receiver.per_path["/slow"] = [Reply(200, body=b"too late", delay=30)]
    (endpoint_id,) = (await endpoints(env, receiver, "/slow")).values()
    (message_id,) = await emit(env)
    await env.run_jobs()
    delivery = (await deliveries(env))[endpoint_id]
    (attempt,) = delivery["attemptLog"]
    assert (attempt["statusCode"], attempt["error"]) == (None, "timeout after 0.5 s")
    assert attempt["responseBody"] == ""
    assert attempt["durationMs"] >= 400  # it waited for the timeout (a lower bound only)
    assert (delivery["status"], delivery["attempts"]) == ("PENDING", 1)
    within_step(delivery, 1)

    await due_now(env, at(delivery["nextAttemptAt"]))
    delivery = (await deliveries(env))[endpoint_id]
    assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 2)
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [None, 200]
    assert webhook_ids(receiver.arrivals("/slow")) == {message_id}
    assert len(receiver.arrivals("/slow")) == 2
    await figures(env)


async def test_5xx_answers_are_logged_and_retried_on_the_schedule_with_one_webhook_id(
    env: Env, receiver: Receiver
) -> None:
    env.webhooks = replace(env.webhooks, schedule=DEFAULT_SCHEDULE)
    receiver.per_path["/error"] = [Reply(500, body=BIG_BODY), Reply(503), Reply(500, body=b"x")]
    (endpoint_id,) = (await endpoints(env, receiver, "/error")).values()
    (message_id,) = await emit(env)
    await env.run_jobs()
    for step in (1, 2, 3):
        delivery = (await deliveries(env))[endpoint_id]
        assert (delivery["status"], delivery["attempts"]) == ("PENDING", step)
        within_step(delivery, step)
        before = len(receiver.arrivals("/error"))
        # not a moment early: two seconds before (the jobs' tolerance is one) nothing goes
        assert await due_now(env, at(delivery["nextAttemptAt"]) - timedelta(seconds=2)) == 0
        assert len(receiver.arrivals("/error")) == before
        await due_now(env, at(delivery["nextAttemptAt"]))
        assert len(receiver.arrivals("/error")) == before + 1
    delivery = (await deliveries(env))[endpoint_id]
    assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 4)
    log = delivery["attemptLog"]
    assert [(a["statusCode"], a["error"]) for a in log] == [
        (500, None),
        (503, None),
        (500, None),
        (200, None),
    ]
    assert log[0]["responseBody"] == BIG_BODY[:MAX_RESPONSE_BYTES].decode()
    assert [a["responseBody"] for a in log[1:]] == ["ok", "x", "ok"]
    assert all(isinstance(a["durationMs"], int) and a["durationMs"] >= 0 for a in log)
    arrived = receiver.arrivals("/error")
    assert len(arrived) == 4 and webhook_ids(arrived) == {message_id}
    assert len({body for body, _ in arrived}) == 1  # the very same payload each time
    await figures(env)


async def test_retry_after_is_honoured_within_the_bounds_of_the_schedule(
    env: Env, receiver: Receiver
) -> None:
    """Step 2 (5 min, so 4–6 min): ``Retry-After: 270`` is honoured to the second; step 3
    (30 min, so 24–36 min): an HTTP-date 30 min away likewise; step 4 (2 h, so 96–144 min):
    ``Retry-After: 86400`` is cut to 144 min; step 5 (5 h, so 4–6 h): ``Retry-After: 0``
    is raised to 4 h. A 500's ``Retry-After`` is not a 429's: it is ignored."""
    env.webhooks = replace(env.webhooks, schedule=DEFAULT_SCHEDULE)
    receiver.per_path["/busy"] = [Reply(500, headers={"retry-after": "3"})]
    (endpoint_id,) = (await endpoints(env, receiver, "/busy")).values()
    (message_id,) = await emit(env)
    await env.run_jobs()
    delivery = (await deliveries(env))[endpoint_id]
    within_step(delivery, 1)

    def http_date(moment: datetime) -> str:
        return format_datetime(moment, usegmt=True)

    asked: list[tuple[Reply, timedelta]] = [
        (Reply(429, headers={"retry-after": "270"}), timedelta(seconds=270)),
        (Reply(503, headers={"retry-after": "HTTP-DATE+1800"}), timedelta(minutes=30)),
        (Reply(429, headers={"retry-after": "86400"}), timedelta(hours=2) * (1 + JITTER)),
        (Reply(429, headers={"retry-after": "0"}), timedelta(hours=5) * (1 - JITTER)),
    ]
    for reply, expected in asked:
        now = whole_second_after(at(delivery["nextAttemptAt"]))
        if reply.headers["retry-after"].startswith("HTTP-DATE"):
            reply = replace(reply, headers={"retry-after": http_date(now + expected)})
        receiver.per_path["/busy"] = [reply]
        await due_now(env, now)
        delivery = (await deliveries(env))[endpoint_id]
        assert delivery["attemptLog"][-1]["statusCode"] == reply.status
        assert at(delivery["nextAttemptAt"]) - now == expected, reply
        assert await due_now(env, now + expected - timedelta(seconds=2)) == 0
    await due_now(env, at(delivery["nextAttemptAt"]))
    delivery = (await deliveries(env))[endpoint_id]
    assert (delivery["status"], delivery["attempts"]) == ("SUCCEEDED", 6)
    assert webhook_ids(receiver.arrivals("/busy")) == {message_id}
    await figures(env)


async def test_gone_disables_the_endpoint_at_once(env: Env, receiver: Receiver) -> None:
    """A 410 (here on the second attempt, after a 500) disables the endpoint in the same
    transaction as the attempt: no retry, no further message, ``webhook_endpoint.disabled``
    emitted once (to the other endpoints, not to the disabled one)."""
    env.webhooks = replace(env.webhooks, schedule=DEFAULT_SCHEDULE)
    receiver.per_path["/gone"] = [Reply(500), Reply(410, body=b"gone for good")]
    ids = await endpoints(env, receiver, "/gone", "/ok")
    await emit(env)
    await env.run_jobs()
    delivery = (await deliveries(env))[ids["/gone"]]
    await due_now(env, at(delivery["nextAttemptAt"]))
    found = (await data(env, ENDPOINT, id=ids["/gone"]))["webhookEndpoint"]
    assert found == {"enabled": False, "disabledReason": "the endpoint answered 410 Gone"}
    delivery = (await deliveries(env))[ids["/gone"]]
    assert (delivery["status"], delivery["attempts"], delivery["nextAttemptAt"]) == (
        "FAILED",
        2,
        None,
    )
    assert [(a["statusCode"], a["responseBody"]) for a in delivery["attemptLog"]] == [
        (500, "ok"),
        (410, "gone for good"),
    ]
    (disabled,) = await messages(env, "webhook_endpoint.disabled")
    assert disabled["data"] == {
        "endpoint_id": ids["/gone"],
        "url": receiver.at("/gone"),
        "reason": "the endpoint answered 410 Gone",
    }
    # Long after, and with a new message: nothing more goes to the disabled endpoint.
    await emit(env)
    await due_now(env, env.clock() + timedelta(days=2))
    assert len(receiver.arrivals("/gone")) == 2
    ok = receiver.arrivals("/ok")
    assert [b'"webhook_endpoint.disabled"' in body for body, _ in ok] == [False, True, False]
    assert len(await messages(env, "webhook_endpoint.disabled")) == 1
    await figures(env, expected_failed=1)


@pytest.mark.parametrize("status", [301, 302, 307])
async def test_redirects_are_not_followed_and_count_as_failures(
    env: Env, receiver: Receiver, elsewhere: Receiver, status: int
) -> None:
    env.webhooks = replace(env.webhooks, schedule=DEFAULT_SCHEDULE)
    targets = {
        "/to-path": receiver.at("/target"),
        "/to-server": elsewhere.at("/target"),
        "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "/to-loopback": "http://127.0.0.1:1/",
    }
    for path, location in targets.items():
        receiver.per_path[path] = [Reply(status, headers={"location": location}, body=b"moved")]
    ids = await endpoints(env, receiver, *targets)
    (message_id,) = await emit(env)
    await env.run_jobs()
    first = await deliveries(env)
    for path, endpoint_id in ids.items():
        delivery = first[endpoint_id]
        assert (delivery["status"], delivery["attempts"]) == ("PENDING", 1), path
        (attempt,) = delivery["attemptLog"]
        assert attempt["statusCode"] == status
        assert attempt["error"] == "redirect not followed"
        assert attempt["responseBody"] == "moved"
        within_step(delivery, 1)
    assert receiver.arrivals("/target") == [] and elsewhere.received == []

    latest = max(at(d["nextAttemptAt"]) for d in first.values())
    await due_now(env, latest)
    again = await deliveries(env)
    assert {(d["status"], d["attempts"]) for d in again.values()} == {("SUCCEEDED", 2)}
    for path in targets:
        arrived = receiver.arrivals(path)
        assert len(arrived) == 2 and webhook_ids(arrived) == {message_id}
    assert receiver.arrivals("/target") == [] and elsewhere.received == []
    await figures(env, redirects_followed=0)


CREATE_ENDPOINT = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id } }"""


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/hooks",
        "http://0x7f000001/hooks",
        "http://017700000001/hooks",
        "http://0x7f.0.0.1/hooks",
        "http://127.1/hooks",
        "http://0177.0.0.1/hooks",
        "http://0/hooks",
        "http://127.0.0.1./hooks",
        "http://evil.com@127.0.0.1/hooks",
        "http://127.0.0.1#@evil.com/hooks",
        "http://[::ffff:7f00:1]/hooks",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://[fd00::1]/hooks",
        "http://xn--localhost-/hooks",  # was an INTERNAL error (an IDNA error escaped)
        "http://\u24dbocalhost/hooks",
    ],
)
async def test_endpoints_leading_to_private_addresses_are_refused_through_the_api(
    env: Env, url: str
) -> None:
    """The installation allows only the name ``localhost`` (the receivers here): every
    other way of writing a private address is a VALIDATION error on ``url``, nothing is
    created."""
    refused = await failure(env, CREATE_ENDPOINT, alone=True, input={"url": url})
    assert refused == {"code": "VALIDATION", "field": "url"}
    found = await data(env, "{ webhookEndpoints { nodes { id } } }")
    assert found["webhookEndpoints"]["nodes"] == []
