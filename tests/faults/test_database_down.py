"""The database out of reach (issue 9): ingest and GraphQL answer 503 with a coded error
(REST ``database_unavailable``, GraphQL ``SERVICE_UNAVAILABLE``) and ``Retry-After``
within the bound, never a 500 and never a hang, and serve again as soon as the database
answers, without a restart. A batch refused with 503 and sent again is stored once.

PostgreSQL is reached through a TCP proxy the test turns against the app (refuse, cut,
stall, withhold the answer to COMMIT); SQLite is locked by another connection holding
``BEGIN EXCLUSIVE`` (in WAL mode that blocks writers; readers go on reading)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url

from models.db import Database
from tests.conftest import BACKENDS, START, Backend, Env
from tests.faults.db_proxy import DatabaseProxy
from tests.figures import record

CONNECT, POOL = 1.0, 1.0
BOUND = CONNECT + POOL
"""What a request may wait for the database (the settings below), then 503."""
SLACK = 1.5
"""Scheduling and the cleanup of a connection given up on."""
READY_BOUND = 2.0
STATEMENT = 1.5
STATEMENT_BOUND = 2 * STATEMENT
"""asyncpg gives up on a statement after the statement timeout, then waits as long again
to send the server its cancel request (over a new connection, silent too)."""

pytestmark = pytest.mark.settings(
    database_connect_timeout_seconds=CONNECT, database_pool_timeout_seconds=POOL
)

ON_POSTGRES = pytest.mark.parametrize(
    "backend", [b for b in BACKENDS if b == "postgres"], indirect=True
)
"""A network stall or a lost connection is PostgreSQL's (SQLite is a file)."""

CREATE_CUSTOMER = "mutation($n: String!) { createCustomer(input: {name: $n}) { id } }"
CUSTOMERS = "{ customers { nodes { id } } }"


@dataclass
class ProxiedBackend(Backend):
    proxy: DatabaseProxy | None = None
    direct_url: str = ""
    """The database itself, not through the proxy (to count what was stored)."""


@pytest.fixture
async def backend(backend: Backend) -> AsyncIterator[ProxiedBackend]:
    """The backend; on PostgreSQL the app reaches it through a proxy of this test's."""
    if backend.name != "postgres":
        yield ProxiedBackend(backend.name, backend.database_url, backend.redis_url)
        return
    url = make_url(backend.database_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    proxied = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    try:
        yield ProxiedBackend(
            backend.name, proxied, backend.redis_url, proxy=proxy, direct_url=backend.database_url
        )
    finally:
        await proxy.close()


@dataclass
class Answer:
    what: str
    status: int
    code: str | None
    retry_after: str | None
    elapsed: float


def events(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "transaction_id": f"{prefix}-{i}",
            "customer_id": "cust-1",
            "event_type": "api_call",
            "timestamp": START.isoformat().replace("+00:00", "Z"),
            "properties": {"n": str(i)},
        }
        for i in range(n)
    ]


async def timed(what: str, call: Callable[[], Awaitable[httpx.Response]]) -> Answer:
    """The answer to a request and how long it took (bounded: a hang fails the test)."""
    started = time.monotonic()
    response = await asyncio.wait_for(call(), timeout=BOUND + 30)
    elapsed = time.monotonic() - started
    body = response.json()
    if "errors" in body:
        codes = {e.get("extensions", {}).get("code") for e in body["errors"]}
        code = codes.pop() if len(codes) == 1 else f"mixed {sorted(map(str, codes))}"
    else:
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return Answer(what, response.status_code, code, response.headers.get("retry-after"), elapsed)


def requests(env: Env, *, graphql_reads: bool) -> list[tuple[str, Callable[[], Any]]]:
    admin = {"Authorization": f"Bearer {env.admin_key}"}
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("ingest", lambda: env.ingest(events("down", 3))),
        (
            "graphql mutation",
            lambda: env.client.post(
                "/graphql", json={"query": CREATE_CUSTOMER, "variables": {"n": "x"}}, headers=admin
            ),
        ),
    ]
    if graphql_reads:
        calls.append(
            (
                "graphql query",
                lambda: env.client.post("/graphql", json={"query": CUSTOMERS}, headers=admin),
            )
        )
    return calls


def assert_refused(answer: Answer, bound: float = BOUND) -> None:
    expected = "database_unavailable" if answer.what == "ingest" else "SERVICE_UNAVAILABLE"
    assert (answer.status, answer.code) == (503, expected), answer
    assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
    assert answer.elapsed < bound + SLACK, answer


@contextmanager
def sqlite_locked(env: Env) -> Iterator[None]:
    """Another connection holds SQLite's write lock for the block."""
    path = make_url(env.backend.database_url).database
    assert path is not None
    holder = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def stored(env: Env, transaction_ids: list[str]) -> int:
    """How many of ``transaction_ids`` are stored (read past the proxy)."""
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    db = env.db if backend.proxy is None else Database(backend.direct_url)
    query = text("SELECT count(*) FROM usage_events WHERE transaction_id IN :ids").bindparams(
        bindparam("ids", expanding=True)
    )
    try:
        async with db.read() as conn:
            found = await conn.execute(query, {"ids": transaction_ids})
            return int(found.scalar_one())
    finally:
        if db is not env.db:
            await db.dispose()


async def test_database_unreachable_answers_503_within_the_bound_then_recovers(env: Env) -> None:
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    calls = requests(env, graphql_reads=backend.proxy is not None)
    before = [await timed(w, c) for w, c in calls]
    assert [a.status for a in before] == [200] * len(before), before

    answers: list[Answer] = []
    ready: Answer
    if backend.proxy is not None:  # the server goes away: open connections reset, new refused
        backend.proxy.refuse()
        backend.proxy.cut()
        for _ in range(3):
            answers += [await timed(w, c) for w, c in calls]
        ready = await timed("readyz", lambda: env.client.get("/readyz"))
        assert ready.status == 503 and ready.elapsed < READY_BOUND + SLACK, ready
        await backend.proxy.accept()
    else:
        with sqlite_locked(env):
            for _ in range(3):
                answers += [await timed(w, c) for w, c in calls]
            # readers are not blocked by a writer in WAL mode: the database is readable
            ready = await timed("readyz", lambda: env.client.get("/readyz"))
            assert ready.status == 200 and ready.elapsed < READY_BOUND + SLACK, ready
    for answer in answers:
        assert_refused(answer)

    after = [await timed(w, c) for w, c in calls]
    assert [a.status for a in after] == [200] * len(after), after
    assert (await env.client.get("/readyz")).status_code == 200
    record(
        f"database unreachable [{backend.name}]",
        requests=len(answers),
        answered_503=sum(a.status == 503 for a in answers),
        hung=sum(a.elapsed >= BOUND + SLACK for a in answers),
        recovered=int(all(a.status == 200 for a in after)),
    )


@ON_POSTGRES
async def test_stalled_database_answers_503_within_the_bound_under_load(env: Env) -> None:
    """The server accepts and then says nothing (open connections and new ones): more
    requests at once than the pool holds are all answered 503 within the bound."""
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    assert backend.proxy is not None
    calls = requests(env, graphql_reads=True)
    before = [await timed(w, c) for w, c in calls]
    assert [a.status for a in before] == [200] * len(before), before

    backend.proxy.stall()
    many = [calls[i % len(calls)] for i in range(30)]  # more than the pool's 20 connections
    answers = await asyncio.gather(*(timed(w, c) for w, c in many))
    ready = await timed("readyz", lambda: env.client.get("/readyz"))
    backend.proxy.flow()
    for answer in answers:
        assert_refused(answer)
    assert ready.status == 503 and ready.elapsed < READY_BOUND + SLACK, ready

    after = [await timed(w, c) for w, c in calls]
    assert [a.status for a in after] == [200] * len(after), after
    record(
        "database stalled, 30 concurrent requests [postgres]",
        requests=len(answers),
        answered_503=sum(a.status == 503 for a in answers),
        hung=sum(a.elapsed >= BOUND + SLACK for a in answers),
        recovered=int(all(a.status == 200 for a in after)),
        slowest_ms=round(max(a.elapsed for a in answers) * 1000),
    )


@pytest.mark.settings(
    database_connect_timeout_seconds=CONNECT,
    database_pool_timeout_seconds=POOL,
    statement_timeout_ms=int(STATEMENT * 1000),
)
@ON_POSTGRES
async def test_database_stalling_mid_statement_answers_503_within_the_statement_timeout(
    env: Env,
) -> None:
    """The server stops answering once the app is inside its unit of work: the statement
    timeout bounds the wait (twice it: asyncpg's cancel request waits as long)."""
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    assert backend.proxy is not None
    batch = events("mid-statement", 5)
    backend.proxy.stall_at(b"INSERT INTO")
    refused = await timed("ingest", lambda: env.ingest(batch))
    backend.proxy.flow()
    assert_refused(refused, bound=STATEMENT_BOUND)

    resent = await env.ingest(batch)
    assert resent.status_code == 200, resent.text
    assert resent.json()["accepted"] + len(resent.json()["duplicates"]) == len(batch)
    record(
        "database stalled mid-statement [postgres]",
        requests=1,
        answered_503=int(refused.status == 503),
        hung=int(refused.elapsed >= STATEMENT_BOUND + SLACK),
        recovered=int(resent.status_code == 200),
        elapsed_ms=round(refused.elapsed * 1000),
    )


async def test_a_batch_refused_with_503_and_resent_is_stored_once(env: Env) -> None:
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    batch = events("resend", 10)
    ids = [e["transaction_id"] for e in batch]

    if backend.proxy is not None:  # unreachable: nothing stored
        backend.proxy.refuse()
        backend.proxy.cut()
        refused = await timed("ingest", lambda: env.ingest(batch))
        await backend.proxy.accept()
    else:
        with sqlite_locked(env):
            refused = await timed("ingest", lambda: env.ingest(batch))
    assert_refused(refused)
    assert await stored(env, ids) == 0

    resent = await env.ingest(batch)
    assert resent.status_code == 200, resent.text
    assert (resent.json()["accepted"], resent.json()["duplicates"]) == (10, [])
    again = await env.ingest(batch)
    assert (again.json()["accepted"], sorted(again.json()["duplicates"])) == (0, sorted(ids))
    assert await stored(env, ids) == 10
    record(
        f"ingest refused with 503, resent [{backend.name}]",
        sent=len(batch),
        refused_503=int(refused.status == 503),
        stored=await stored(env, ids),
        lost=len(batch) - await stored(env, ids),
    )


@ON_POSTGRES
async def test_commit_whose_answer_is_lost_is_503_and_the_resend_is_deduplicated(
    env: Env,
) -> None:
    """The connection drops after the server got COMMIT and before the app heard back:
    the app cannot know, answers 503; the client resends and every event is a duplicate
    (it was stored, once)."""
    backend = env.backend
    assert isinstance(backend, ProxiedBackend)
    assert backend.proxy is not None
    batch = events("commit-lost", 10)
    ids = [e["transaction_id"] for e in batch]

    backend.proxy.withhold_answer_to(b"COMMIT")
    refused = await timed("ingest", lambda: env.ingest(batch))
    assert backend.proxy.withheld.is_set()
    assert_refused(refused)

    resent = await env.ingest(batch)
    assert resent.status_code == 200, resent.text
    body = resent.json()
    assert (body["accepted"], sorted(body["duplicates"])) == (0, sorted(ids))
    assert await stored(env, ids) == 10
    record(
        "ingest, COMMIT's answer lost [postgres]",
        sent=len(batch),
        refused_503=int(refused.status == 503),
        stored=await stored(env, ids),
        lost=len(batch) - await stored(env, ids),
    )
