"""``meterline serve --demo`` in a fresh directory, as the README's first command runs it
(embedded SQLite and Redis, worker in the API process): a fixture for the end-to-end
tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class DemoServer:
    base: str
    key: str
    process: subprocess.Popen[str]
    socket_path: str
    demo_page: str


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[DemoServer]:
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
    key, socket_path, demo_page = None, "", ""
    deadline = time.monotonic() + 60
    for line in process.stdout:
        found = re.fullmatch(r"API key: (ml_live_\S+)\n", line)
        if found:
            key = found.group(1)
        if line.startswith("Demo page: "):
            demo_page = line.removeprefix("Demo page: ").strip()
        if line.startswith("embedded Redis at unix://"):
            socket_path = line.split("unix://", 1)[1].split(";")[0]
        if "Uvicorn running" in line or time.monotonic() > deadline:
            break
    assert key, "serve --demo printed no 'API key: …' line"
    assert demo_page, "serve --demo printed no 'Demo page: …' line"
    # keep reading what the server prints (its access log), or a full pipe would stall it
    threading.Thread(target=process.stdout.read, daemon=True).start()
    yield DemoServer(f"http://127.0.0.1:{port}", key, process, socket_path, demo_page)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
