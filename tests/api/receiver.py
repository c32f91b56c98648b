"""A real local HTTP receiver of webhooks, scripted per request: the delivery tests and
the receiver fault tests post to it through the real delivery jobs.

``Reply`` is one scripted answer (status, headers, body, how long to hold it back);
``Receiver.script`` holds the next answers of any path, ``Receiver.fixed`` the answer a
path always gets, ``Receiver.per_path`` the next answers of one path. Anything unscripted
is answered ``200 ok``. Held-back answers are released when the fixture ends, so a test
never waits for a slow answer the sender gave up on."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``delay`` (seconds) holds it back (released at teardown)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


Script = int | Reply


def as_reply(scripted: Script) -> Reply:
    return scripted if isinstance(scripted, Reply) else Reply(scripted)


@dataclass
class Receiver:
    """A local HTTP server answering each POST with the next scripted reply (then 200).

    Precedence: ``fixed[path]``, then ``per_path[path]`` (consumed), then ``script``
    (consumed), else 200; ``slow[path]`` holds back any answer of the path."""

    url: str = ""
    script: list[Script] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # of each arrival, in order
    fixed: dict[str, Script] = field(default_factory=dict)  # path -> what it always answers
    per_path: dict[str, list[Script]] = field(default_factory=dict)  # path -> next answers
    slow: dict[str, float] = field(default_factory=dict)  # path -> seconds before answering
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        """``http://localhost:<port>`` (``url`` is its ``/hooks``)."""
        return self.url.removesuffix("/hooks")

    def at(self, path: str) -> str:
        return self.base + path

    def arrivals(self, path: str) -> list[tuple[bytes, dict[str, str]]]:
        """What arrived at ``path``, in order."""
        with self.lock:
            pairs = list(zip(self.received, self.paths, strict=True))
        return [got for got, at in pairs if at == path]

    def next_reply(self, path: str) -> Reply:
        with self.lock:
            queued = self.per_path.get(path)
            if path in self.fixed:
                reply = as_reply(self.fixed[path])
            elif queued:
                reply = as_reply(queued.pop(0))
            elif self.script:
                reply = as_reply(self.script.pop(0))
            else:
                reply = Reply()
        return replace(reply, delay=max(reply.delay, self.slow.get(path, 0.0)))


def serve(found: Receiver) -> Iterator[Receiver]:
    """Run ``found`` on a free port of 127.0.0.1 (named ``localhost`` in its URL) until the
    generator is closed."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with found.lock:
                found.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                found.paths.append(self.path)
            reply = found.next_reply(self.path)
            if reply.delay:
                found.released.wait(reply.delay)
            with contextlib.suppress(OSError):  # a slow answer the sender gave up on
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # a batch connects at once (the default backlog is 5)

    server = Server(("127.0.0.1", 0), Handler)
    found.url = f"http://localhost:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    """A served :class:`Receiver` (import ``receiver_fixture`` to use it as ``receiver``)."""
    yield from serve(Receiver())
