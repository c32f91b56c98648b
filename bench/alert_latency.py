"""Alert latency under load: ingest → signed ``alert.triggered`` webhook, and ingest → GraphQL
subscription push, against the targets (webhook p99 ≤ 1 s, subscription p99 ≤ 500 ms).

What one run measures, per backend (SQLite + embedded Redis always; PostgreSQL + Redis when
``--postgres-url`` and ``--redis-url`` are given):

1. **Layout** (production): a uvicorn process (REDIS_URL set: no in-process worker), a
   ``meterline worker`` process (``--in-process``: the worker runs in the API process, as
   with zero configuration), and a webhook receiver (an HTTP server thread of this
   process on 127.0.0.1) behind an endpoint for ``alert.triggered``; ``meterline migrate``,
   ``meterline keys create``, and the catalog of ``bench/ingest.py`` for the load.
2. **Load**: a separate process posting batches of 100 events to the catalog customers,
   paced at ``--rate`` events/s (what was achieved is printed).
3. **Probes**: ``--probes`` probe customers, each on a contract pricing a probe metric at
   1.00 per unit with a spend alert at 100, all evaluated ``ok`` before the load starts.
   Each probe subscribes ``draftInvoiceUpdated(customerId)`` over graphql-transport-ws
   (``gql``), takes the initial push, waits 300 ms (pushes are at least 250 ms apart), then
   ingests one event of 150 units and measures, from the ingest response, (a) the arrival
   of the webhook at the receiver (its svix signature is verified) and (b) the next push.
4. **Raw limits**, idle and under the load: a bare HTTP POST round trip to the receiver
   (keep-alive httpx) and a Redis PUBLISH → message round trip.

    python bench/alert_latency.py [--quick] [--probes N] [--rate EVENTS_PER_S]
        [--postgres-url postgresql+asyncpg://…] [--redis-url redis://…] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import harness  # bench/ is on sys.path: processes and load batches
import httpx
import ingest  # the catalog the load is rated against
import orjson
import redis.asyncio as aioredis
from backends import add_backend_args, backend_urls, selected_backends
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from rich.console import Console
from rich.table import Table
from svix.webhooks import Webhook

TARGETS = {"webhook": 1.0, "subscription": 0.5}  # p99, seconds
PUSH_SPACING = 0.3
RAW_ROUNDS = 200
RAW = ("bare HTTP POST round trip", "Redis PUBLISH → receive")
IN_FLIGHT = 16  # load requests at once at most (bench/ingest.py's clients)
SUBSCRIPTION = """subscription($customerId: ID!) {
  draftInvoiceUpdated(customerId: $customerId) { total } }"""

out = Console(width=max(110, Console().width))
log = Console(stderr=True, highlight=False, soft_wrap=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))] * 1000


def spread(values: list[float]) -> str:
    return f"{pct(values, 0.5):.1f} / {pct(values, 0.99):.1f} ms"


# ----------------------------------------------------------------------------- receiver


class Receiver:
    """Records, per customer, when its ``alert.triggered`` arrived (monotonic) with the
    body and headers; ``/raw`` answers 200 and records nothing."""

    def __init__(self) -> None:
        self.arrived: dict[str, tuple[float, bytes, dict[str, str]]] = {}
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                at = time.monotonic()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                if self.path == "/raw":
                    return
                customer_id = orjson.loads(body)["data"]["customer_id"]
                with receiver.changed:
                    receiver.arrived[customer_id] = (at, body, dict(self.headers.items()))
                    receiver.changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, customer_id: str, timeout: float) -> tuple[float, bytes, dict[str, str]]:
        with self.changed:
            if not self.changed.wait_for(lambda: customer_id in self.arrived, timeout):
                raise TimeoutError(f"no webhook for {customer_id} within {timeout} s")
            return self.arrived.pop(customer_id)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- load process


def generate_load(
    base: str, key: str, refs: list[str], rate: float, done: Any, results: Any
) -> None:
    """In its own process: batches paced at ``rate`` events/s until ``done`` is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results.put(asyncio.run(_load(base, key, refs, rate, done)))


async def _load(base: str, key: str, refs: list[str], rate: float, done: Any) -> dict[str, Any]:
    batches, errors = harness.Batches(refs), Counter[str]()
    accepted, pending, seq = 0, set[asyncio.Task[None]](), 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as http:

        async def post(body: bytes) -> None:
            nonlocal accepted
            try:
                error = harness.judge(await http.post("/v1/ingest", content=body))
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            if error is None:
                accepted += harness.BATCH
            else:
                errors[error] += 1

        start = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(max(0.0, start + seq * harness.BATCH / rate - time.monotonic()))
            if len(pending) >= IN_FLIGHT:  # behind: the achieved rate says by how much
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.create_task(post(batches.body(0, seq))))
            seq += 1
        await asyncio.gather(*pending)
        seconds = time.monotonic() - start
    return {"rate": accepted / seconds, "seconds": seconds, "errors": dict(errors)}


@contextlib.contextmanager
def background_load(base: str, key: str, refs: list[str], rate: float) -> Iterator[dict[str, Any]]:
    """The load runs while the block runs; the dict holds its figures afterwards."""
    context = multiprocessing.get_context("spawn")
    done, results = context.Event(), context.Queue()
    process = context.Process(target=generate_load, args=(base, key, refs, rate, done, results))
    process.start()
    figures: dict[str, Any] = {}
    try:
        yield figures
    finally:
        done.set()
        figures.update(results.get(timeout=120))
        process.join(30)


# ----------------------------------------------------------------------------- setup


class Api:
    """GraphQL over HTTP with the admin key."""

    def __init__(self, base: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def gql(self, query: str, **variables: Any) -> Any:
        body = self.http.post("/graphql", json={"query": query, "variables": variables}).json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def create(self, mutation: str, select: str = "id", **fields: Any) -> str:
        kind = mutation[0].upper() + mutation[1:] + "Input"
        query = f"mutation($input: {kind}!) {{ {mutation}(input: $input) {{ {select} }} }}"
        return str(self.gql(query, input=fields)[mutation][select])


def setup_probes(api: Api, receiver: Receiver, probes: int) -> tuple[list[str], str]:
    """Probe customers (contract at 1.00 per unit, spend alert at 100), evaluated ``ok``;
    and the secret of the webhook endpoint."""
    units = {"aggregationKey": "units", "propertyFilters": [{"name": "units", "exists": True}]}
    kind = {"aggregationType": "SUM", "eventTypeFilter": {"inValues": ["probe"]}}
    metric = api.create("createBillableMetric", name="Probe units", **kind, **units)
    product = api.create("createProduct", name="Probe", type="USAGE", billableMetricId=metric)
    rate = {"productId": product, "startingAt": "2020-01-01T00:00:00Z", "rateType": "FLAT"}
    card = api.create("createRateCard", name="Probe", rates=[rate | {"price": "1.00"}])
    hooks = {"url": receiver.url("/hooks"), "eventTypes": ["alert.triggered"]}
    secret = api.create("createWebhookEndpoint", "secret", **hooks)
    month = datetime.now(UTC).strftime("%Y-%m-01T00:00:00Z")
    customers = [api.create("createCustomer", name=f"Probe {n}") for n in range(probes)]
    alert = {"alertType": "SPEND_THRESHOLD_REACHED", "threshold": "100"}
    for n, customer in enumerate(customers):
        api.create("createContract", customerId=customer, rateCardId=card, startingAt=month)
        api.create("createAlert", name=f"budget {n}", customerId=customer, **alert)
    deadline = time.monotonic() + 120
    while True:
        states = api.gql("{ alerts { statuses { customerId state } } }")["alerts"]
        ok = {s["customerId"] for a in states for s in a["statuses"] if s["state"] == "OK"}
        if ok >= set(customers):
            return customers, secret
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ok)} of {probes} probe alerts were evaluated")
        time.sleep(0.2)


# ----------------------------------------------------------------------------- measuring


@dataclass
class Plan:
    probes: int = 50
    rate: float = 5000.0  # background events/s
    warmup: float = 5.0  # seconds of load before the probes
    in_process: bool = False  # the worker inside the API process (zero-config layout)


@dataclass
class Figures:
    round_trip: list[float] = field(default_factory=list)
    webhook: list[float] = field(default_factory=list)
    subscription: list[float] = field(default_factory=list)
    raw: dict[str, list[float]] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    load_before: float = 0.0

    def p(self, kind: str, q: float) -> float:
        """Percentile ``q`` of ``webhook`` or ``subscription`` latency, in milliseconds."""
        return pct(self.webhook if kind == "webhook" else self.subscription, q)

    def raw_p50(self, figure: str, when: str = "under load") -> float:
        """p50 of a raw round trip (one of ``RAW``), in milliseconds."""
        return pct(self.raw[f"{figure} ({when})"], 0.5)


async def raw_limits(receiver: Receiver, redis_url: str, when: str, figures: Figures) -> None:
    """Bare POST round trips to the receiver and PUBLISH → receive round trips."""
    body = orjson.dumps({"data": {"padding": "x" * 400}})
    posts, publishes = [], []
    async with httpx.AsyncClient() as http:
        for _ in range(RAW_ROUNDS):
            sent = time.monotonic()
            (await http.post(receiver.url("/raw"), content=body)).raise_for_status()
            posts.append(time.monotonic() - sent)
    client = aioredis.Redis.from_url(redis_url)
    async with client.pubsub() as pubsub:
        await pubsub.subscribe("bench:rtt")
        await pubsub.get_message(timeout=5)  # the subscribe confirmation
        for _ in range(RAW_ROUNDS):
            sent = time.monotonic()
            await client.publish("bench:rtt", b"")
            while await pubsub.get_message(timeout=5) is None:
                pass
            publishes.append(time.monotonic() - sent)
    await client.aclose()
    figures.raw[f"{RAW[0]} ({when})"] = posts
    figures.raw[f"{RAW[1]} ({when})"] = publishes


async def run_probes(
    base: str, key: str, receiver: Receiver, customers: list[str], secret: str, f: Figures
) -> None:
    transport = WebsocketsTransport(
        url=base.replace("http://", "ws://") + "/graphql",
        init_payload={"authorization": f"Bearer {key}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    headers = {"Authorization": f"Bearer {key}"}
    async with Client(transport=transport) as session, httpx.AsyncClient(headers=headers) as http:
        for n, customer_id in enumerate(customers):
            stream = session.subscribe(
                GraphQLRequest(SUBSCRIPTION, variable_values={"customerId": customer_id})
            )

            async def next_push(stream: Any = stream) -> float:
                await anext(stream)
                return time.monotonic()

            try:
                await asyncio.wait_for(next_push(), 10)  # the initial push
                await asyncio.sleep(PUSH_SPACING)
                pushed = asyncio.create_task(next_push())
                arrived = asyncio.create_task(asyncio.to_thread(receiver.wait, customer_id, 10))
                event = {
                    "transaction_id": f"probe-{n}",
                    "customer_id": customer_id,
                    "event_type": "probe",
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "properties": {"units": "150"},
                }
                sent = time.monotonic()
                (await http.post(f"{base}/v1/ingest", json=[event])).raise_for_status()
                responded = time.monotonic()
                at, body, hook_headers = await arrived
                Webhook(secret).verify(body, hook_headers)
                f.round_trip.append(responded - sent)
                f.webhook.append(at - responded)
                f.subscription.append(await asyncio.wait_for(pushed, 10) - responded)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- backends


@contextlib.contextmanager
def worker_process(env: dict[str, str], workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (workdir / "worker.log").open("wb") as output:
        process = subprocess.Popen(
            [*harness.METERLINE, "worker"],
            env=env,
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        harness.stop(process)


def run_backend(
    name: str, plan: Plan, workdir: Path, pg: str | None, redis_url: str | None
) -> Figures:
    """The figures of one backend (PostgreSQL when ``pg`` is given, with ``redis_url``)."""
    f = Figures(load_before=os.getloadavg()[0])
    with backend_urls(workdir, pg, redis_url) as (database_url, redis_url):
        allowed = {"METERLINE_WEBHOOK_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]'}
        env = harness.clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, **allowed)
        if plan.in_process:
            env["METERLINE_RUN_WORKER_IN_PROCESS"] = "true"
        log.print(f"[bold]{name}[/]: migrate, key, catalog, server, worker …")
        harness.meterline(["migrate"], env, workdir)
        scopes = ["--scope", "admin", "--scope", "ingest"]
        key = harness.meterline(["keys", "create", "--org", "bench", *scopes], env, workdir)
        key = key.strip().splitlines()[-1]
        refs = asyncio.run(ingest.seed_catalog(database_url))
        receiver = Receiver()
        try:
            workers = (
                contextlib.nullcontext(None) if plan.in_process else worker_process(env, workdir)
            )
            with workers as worker, harness.server(env, workdir) as (api, base):
                log.print(f"{name}: {plan.probes} probe customers and their alerts …")
                customers, secret = setup_probes(Api(base, key), receiver, plan.probes)
                asyncio.run(raw_limits(receiver, redis_url, "idle", f))
                log.print(f"{name}: load at {plan.rate:,.0f} events/s, then the probes …")
                with background_load(base, key, refs, plan.rate) as f.load:
                    time.sleep(plan.warmup)
                    pids = {"server": api.pid, **({"worker": worker.pid} if worker else {})}
                    before = {k: harness.cpu_seconds(pid) for k, pid in pids.items()}
                    started = time.monotonic()
                    asyncio.run(run_probes(base, key, receiver, customers, secret, f))
                    for k, pid in pids.items():
                        used, was = harness.cpu_seconds(pid), before[k]
                        if used is not None and was is not None:
                            f.cpu[k] = (used - was) / (time.monotonic() - started)
                    asyncio.run(raw_limits(receiver, redis_url, "under load", f))
        finally:
            receiver.close()
        for process in ("server",) if plan.in_process else ("server", "worker"):
            problems, _ = harness.scan_server_log(workdir / f"{process}.log")
            f.problems[process] = sum(problems.values())
    return f


def render(name: str, plan: Plan, f: Figures) -> None:
    table = Table(title=f"{name}: alert latency, {len(f.webhook)} probes under load")
    for column in ("figure", "p50 / p99", "note"):
        table.add_column(column)
    errors = ", ".join(f"{k}: {v}" for k, v in f.load["errors"].items()) or "no errors"
    rows = [
        ("background load", f"{f.load['rate']:,.0f} events/s", f"asked {plan.rate:,.0f}; {errors}"),
        ("probe ingest round trip", spread(f.round_trip), "POST /v1/ingest, one event"),
    ]
    for kind, values in (("webhook", f.webhook), ("subscription", f.subscription)):
        target = TARGETS[kind]
        p99 = pct(values, 0.99) / 1000
        verdict = "[green]met[/]" if p99 <= target else "[red]not met[/]"
        what = "signed alert.triggered at the receiver" if kind == "webhook" else "next push"
        note = f"{what}; p99 is {p99 / target:.0%} of the {target * 1000:.0f} ms target: {verdict}"
        rows.append((f"ingest response → {kind}", spread(values), note))
    rows += [(figure, spread(values), "") for figure, values in f.raw.items()]
    post, publish = (f.raw[f"{figure} (under load)"] for figure in RAW)
    rows += [
        ("webhook p50 ÷ bare POST p50", f"{pct(f.webhook, 0.5) / pct(post, 0.5):,.0f}×", ""),
        ("push p50 ÷ PUBLISH p50", f"{pct(f.subscription, 0.5) / pct(publish, 0.5):,.0f}×", ""),
        ("CPU during the probes", ", ".join(f"{k} {v:.0%}" for k, v in f.cpu.items()), "of a core"),
        (
            "log problems",
            ", ".join(f"{k} {v}" for k, v in f.problems.items()),
            "tracebacks, errors",
        ),
        ("machine load before", f"{f.load_before:.2f}", f"1-min average, {os.cpu_count()} cores"),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10 probes, short warm-up")
    parser.add_argument("--probes", type=int, help="probe crossings (default 50)")
    parser.add_argument("--rate", type=float, default=5000, help="background events/s")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="the worker inside the API process (the zero-config layout) instead of its own",
    )
    add_backend_args(parser)
    args = parser.parse_args()
    plan = Plan(
        probes=args.probes or (10 if args.quick else 50),
        rate=args.rate,
        warmup=2.0 if args.quick else 5.0,
        in_process=args.in_process,
    )
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    for name, postgres_url in selected_backends(args):
        workdir = Path(tempfile.mkdtemp(prefix=f"meterline-alerts-{name.lower()}-"))
        try:
            render(name, plan, run_backend(name, plan, workdir, postgres_url, args.redis_url))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
