"""The embed demo page in a real browser (Debian's Chromium, driven by Playwright), against
`meterline serve --demo`: events sent to the API show up in the page without a reload,
and a budget alert created in the page turns IN_ALARM live. A screenshot is saved under
tests/e2e/artifacts/."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e import demo_server as demo
from tests.e2e.demo_server import DemoServer

demo_server = demo.demo_server  # the fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LIVE = 15_000  # ms a pushed change may take to show (the target is well under a second)


def ingest(server: DemoServer, transaction_id: str, tokens: int) -> None:
    """``tokens`` gpt-5 input tokens ($1.50 per million) for the demo customer, now."""
    event = {
        "transaction_id": transaction_id,
        "customer_id": "demo-customer",
        "event_type": "llm_request",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": {"model": "gpt-5", "input_tokens": tokens},
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    report = httpx.post(f"{server.base}/v1/ingest", json=[event], headers=headers).json()
    assert report["accepted"] == 1, report


@pytest.fixture
async def page(demo_server: DemoServer) -> AsyncIterator[Page]:
    assert CHROMIUM_INSTALLED, "install Chromium: apt-get install -y chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            opened = await browser.new_page(viewport={"width": 1200, "height": 1400})
            problems: list[str] = []
            opened.on("pageerror", lambda error: problems.append(str(error)))
            yield opened
            assert problems == [], problems
        finally:
            await browser.close()


async def test_the_demo_page_shows_usage_the_draft_and_a_budget_live(
    demo_server: DemoServer, page: Page
) -> None:
    await page.goto(demo_server.demo_page)
    await page.evaluate("window.loadedOnce = true")  # gone if the page ever reloads
    total = page.locator("meterline-draft-invoice [data-testid=total]")
    usage = page.locator("meterline-usage")
    await expect(total).to_have_attribute("data-value", "0.00", timeout=LIVE)

    # 8M tokens: $12.00 of usage, $9.00 free each month, $3.00 to pay
    ingest(demo_server, "browser-1", 8_000_000)
    await expect(total).to_have_attribute("data-value", "3.00", timeout=LIVE)
    await expect(total).to_contain_text("3.00 USD")
    await expect(usage).to_have_attribute(
        "data-total", re.compile(r"^8000000(\.0*)?$"), timeout=LIVE
    )

    budget = page.locator("meterline-budget")
    await budget.get_by_label("Name").fill("Spend over $20")
    await budget.get_by_label("Type").select_option("SPEND_THRESHOLD_REACHED")
    await budget.get_by_label("Threshold").fill("20")
    await budget.get_by_role("button", name=re.compile("create", re.IGNORECASE)).click()
    state = budget.locator("[data-state]").filter(has_text="Spend over $20")
    await expect(state).to_have_attribute("data-state", "OK", timeout=LIVE)

    # 8M more: $24.00 of spend crosses the $20 budget
    ingest(demo_server, "browser-2", 8_000_000)
    await expect(state).to_have_attribute("data-state", "IN_ALARM", timeout=LIVE)
    await expect(total).to_have_attribute("data-value", "15.00", timeout=LIVE)
    await expect(usage).to_have_attribute(
        "data-total", re.compile(r"^16000000(\.0*)?$"), timeout=LIVE
    )

    assert await page.evaluate("window.loadedOnce") is True  # all of it without a reload
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "embed-demo.png"), full_page=True)
