"""The two commands: `meterline serve --demo` on a fresh directory, then the README's curl."""

import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.e2e import demo_server as demo
from tests.e2e.demo_server import DemoServer, clean_env

demo_server = demo.demo_server  # the fixture


DRAFTS = """{ customers { nodes { name draftInvoices {
  subtotal total lines { type name quantity amount group } } } } }"""


def test_serve_demo_then_the_readme_tour(
    demo_server: DemoServer,
) -> None:
    base, key = demo_server.base, demo_server.key
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
    demo_server: DemoServer,
) -> None:
    process, socket_path = demo_server.process, demo_server.socket_path
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


def test_the_embed_module_and_the_demo_page_are_served(demo_server: DemoServer) -> None:
    base, page = demo_server.base, demo_server.demo_page
    module = httpx.get(f"{base}/embed/meterline-embed.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert "defineMeterlineElements" in module.text
    shown = httpx.get(page)
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    for element in ("meterline-usage", "meterline-draft-invoice", "meterline-budget"):
        assert f"<{element}" in shown.text
    token = page.split("token=", 1)[1]
    assert token.startswith("ml_ct_") and token in shown.text
    assert demo_server.key not in shown.text  # never an API key in a page
    for refused in ("", demo_server.key, "ml_ct_unknown"):
        answer = httpx.get(f"{base}/embed/demo", params={"token": refused})
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthenticated"
