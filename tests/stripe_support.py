"""A real localstripe server for tests, and small helpers to drive it.

Use the fixture by importing it into a test module or conftest::

    from tests.stripe_support import localstripe_url  # noqa: F401

The server is `tests/localstripe_server.py` (localstripe plus one-off invoices, finalize,
idempotency keys, a request log); one server per test session, its data shared by all tests.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

ROOT = Path(__file__).resolve().parents[1]
SERVER_MODULE = "tests.localstripe_server"  # run from the repository root
DEFAULT_API_KEY = "sk_test_meterline"
# Card numbers localstripe knows: attaching both succeeds, charging the second one fails.
TEST_CARDS = {"ok": "4242424242424242", "declined": "4000000000000341"}
WEBHOOK_DELAY_SECONDS = 0.1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """Base URL ("http://127.0.0.1:PORT") of a localstripe server running for the session."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                SERVER_MODULE,
                "--port",
                str(port),
                "--webhook-delay",
                str(WEBHOOK_DELAY_SECONDS),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )

        def output() -> str:
            stderr.seek(0)
            return stderr.read().decode(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None:
                    pytest.fail(f"localstripe exited with {process.returncode}:\n{output()}")
                try:
                    if httpx.get(f"{base}/_test/requests", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"localstripe did not answer on {base} within 15 s:\n{output()}")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stripe_client(base: str, api_key: str = DEFAULT_API_KEY) -> stripe.StripeClient:
    """A StripeClient talking to localstripe (use its `*_async` methods)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base},
        http_client=stripe.HTTPXClient(),
        max_network_retries=0,
    )


async def register_stripe_webhook(
    base: str, hook_id: str, url: str, secret: str, events: list[str] | None = None
) -> None:
    """Have localstripe POST events (all of them, or only `events`) to `url`, signed with
    `secret` (`Stripe-Signature` header, checked by `stripe.Webhook.construct_event`)."""
    data: dict[str, Any] = {"url": url, "secret": secret}
    if events is not None:
        data["events[]"] = list(events)
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base}/_config/webhooks/{hook_id}", data=data)
        response.raise_for_status()


async def unregister_stripe_webhook(base: str, hook_id: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.delete(f"{base}/_test/webhooks/{hook_id}")
        response.raise_for_status()


async def stripe_requests(base: str) -> list[dict[str, Any]]:
    """Every /v1/* request so far: {"method", "path", "idempotency_key", "replayed", "status"}."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base}/_test/requests")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result


async def clear_stripe_requests(base: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.delete(f"{base}/_test/requests")
        response.raise_for_status()


async def create_stripe_customer(base: str, email: str, card: str | None = None) -> str:
    """Create a customer and return its id. With `card` ("ok" or "declined") the customer gets
    a default card payment method: `POST /v1/invoices/{id}/pay` then succeeds, or fails with a
    402 card_declined (attaching the declined card still succeeds)."""
    if card is not None and card not in TEST_CARDS:
        raise ValueError(f"card must be one of {sorted(TEST_CARDS)} or None, not {card!r}")
    client = stripe_client(base)
    params: dict[str, Any] = {"email": email}
    if card is not None:
        payment_method = await client.v1.payment_methods.create_async(
            {
                "type": "card",
                "card": {
                    "number": TEST_CARDS[card],
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                },
            }
        )
        params["payment_method"] = payment_method.id
        params["invoice_settings"] = {"default_payment_method": payment_method.id}
    customer = await client.v1.customers.create_async(params)  # type: ignore[arg-type]
    return str(customer.id)
