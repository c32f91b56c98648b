"""The two commands: `meterline serve --demo` on a fresh directory, then the README's curl."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    key, socket_path = None, ""
    deadline = time.monotonic() + 60
    for line in process.stdout:
        found = re.fullmatch(r"API key: (ml_live_\S+)\n", line)
        if found:
            key = found.group(1)
        if line.startswith("embedded Redis at unix://"):
            socket_path = line.split("unix://", 1)[1].split(";")[0]
        if "Uvicorn running" in line or time.monotonic() > deadline:
            break
    assert key, "serve --demo printed no 'API key: …' line"
    yield f"http://127.0.0.1:{port}", key, process, socket_path
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


DRAFTS = """{ customers { nodes { name draftInvoices {
  subtotal total lines { type name quantity amount group } } } } }"""


def test_serve_demo_then_the_readme_tour(
    demo_server: tuple[str, str, subprocess.Popen[str], str],
) -> None:
    base, key, _, _ = demo_server
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{base}/readyz").json()["status"] == "ok"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "transaction_id": "tx-1",
        "customer_id": "demo-customer",
        "event_type": "llm_request",
        "timestamp": now,
        "properties": {"model": "gpt-5", "input_tokens": 2000000},
    }
    report = httpx.post(f"{base}/v1/ingest", json=[event, event], headers=headers).json()
    assert report["accepted"] == 1 and report["duplicates"] == ["tx-1"]
    answer = httpx.post(f"{base}/graphql", json={"query": DRAFTS}, headers=headers).json()
    ((customer,),) = [answer["data"]["customers"]["nodes"]]
    (draft,) = customer["draftInvoices"]
    usage, credit = draft["lines"]
    assert (usage["group"], usage["quantity"], usage["amount"]) == ({"model": "gpt-5"}, "2", "3.00")
    assert (credit["name"], credit["amount"]) == ("Free tier", "-3.00")
    assert (draft["subtotal"], draft["total"]) == ("3.00", "0.00")


def redis_servers_on(socket_path: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", f"unixsocket:{socket_path}"], capture_output=True)
    return found.stdout.decode().split()


def test_the_embedded_redis_stops_with_the_server(
    demo_server: tuple[str, str, subprocess.Popen[str], str],
) -> None:
    _, _, process, socket_path = demo_server
    assert socket_path and redis_servers_on(socket_path), "no embedded redis-server found"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while redis_servers_on(socket_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_servers_on(socket_path) == []


def test_keys_create_prints_a_key_once(tmp_path: Path) -> None:
    env = clean_env() | {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    run = [sys.executable, "-m", "meterline.cli"]
    subprocess.run([*run, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    out = subprocess.run(
        [*run, "keys", "create", "--org", "Acme", "--scope", "read", "--scope", "ingest"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert re.fullmatch(r"ml_live_[A-Za-z0-9_-]{43}\n", out)
    assert out.strip().encode() not in (tmp_path / "m.db").read_bytes()
