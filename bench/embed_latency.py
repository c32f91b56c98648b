"""Ingest → browser: how long after an ingest call returns the embedded usage chart shows
the new event (issue 7), in the zero-config layout.

One run starts ``meterline serve --demo`` in a fresh directory (SQLite, embedded Redis,
worker in the API process), opens its demo page in Debian's Chromium (Playwright,
headless), then ``--events`` times: reads ``<meterline-usage data-total>``, ingests one
event for the demo customer, and waits (checked in the page each animation frame) until
the attribute changes (subscription push, re-read of the usage, re-render), timed from
the start of the ingest call. Events are 300 ms apart (pushes are at most one per
250 ms). Prints p50 / p90 / max, and the raw limit measured the same way: the ingest call
alone.

    PYTHONPATH=. python bench/embed_latency.py [--events N] [--port P]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import httpx
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
CHANGED = "b => document.querySelector('meterline-usage').getAttribute('data-total') !== b"


def start_demo(port: int, directory: str) -> tuple[subprocess.Popen[str], str, str]:
    """The server, its API key and its demo page address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    env["PYTHONPATH"] = os.getcwd()
    process = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "serve", "--demo", "--port", str(port)],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    key = page = ""
    for line in process.stdout:
        if line.startswith("API key: "):
            key = line.split(": ", 1)[1].strip()
        if line.startswith("Demo page: "):
            page = line.split(": ", 1)[1].strip()
        if "Uvicorn running" in line:
            break
    return process, key, page


def event(number: int) -> dict[str, object]:
    return {
        "transaction_id": f"embed-latency-{number}",
        "customer_id": "demo-customer",
        "event_type": "llm_request",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": {"model": "gpt-5", "input_tokens": 1000},
    }


def summary(name: str, millis: list[float]) -> str:
    ordered = sorted(millis)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return (
        f"{name:<32} p50 {statistics.median(ordered):6.1f} ms   p90 {p90:6.1f} ms   "
        f"max {ordered[-1]:6.1f} ms"
    )


async def measure(port: int, events: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        process, key, page_url = start_demo(port, directory)
        base = f"http://127.0.0.1:{port}"
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                page = await browser.new_page()
                await page.goto(page_url)
                chart = page.locator("meterline-usage")
                await page.locator("meterline-draft-invoice [data-testid=total]").wait_for()
                await asyncio.sleep(1)
                shown, ingest_only = [], []
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                    for number in range(events):
                        before = await chart.get_attribute("data-total")
                        start = time.perf_counter()
                        answer = await client.post("/v1/ingest", json=[event(number)])
                        ingest_only.append((time.perf_counter() - start) * 1000)
                        assert answer.json()["accepted"] == 1, answer.text
                        await page.wait_for_function(
                            CHANGED, arg=before, polling="raf", timeout=10_000
                        )
                        shown.append((time.perf_counter() - start) * 1000)
                        await asyncio.sleep(0.3)
                await browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"{events} events, SQLite + embedded Redis, worker in the API process")
    print(summary("ingest → chart updated in page", shown))
    print(summary("raw limit: the ingest call", ingest_only))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    asyncio.run(measure(args.port, args.events))


if __name__ == "__main__":
    main()
