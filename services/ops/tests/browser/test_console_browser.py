"""The ops console in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no downloaded
browser) against the ops service served by uvicorn on a free port: log in, find a referral's timeline, replay a
dead letter and see it handled, see an SLA board change. Screenshots go to test-artifacts/ops-browser/."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from ops.bootstrap import definition
from ops.testkit import (
    HUB_KEY,
    NO_OPS_KEY,
    FlakyConsumer,
    authorization_requested,
    callers,
    messages,
    referral_received,
)

from shared.app import create_api
from shared.auth import StaticAuthenticator
from shared.bus.base import RetryPolicy
from shared.bus.inprocess import InProcessBus
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings
from shared.telemetry import configure_tracing, tracer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[4]
ARTIFACTS = Path(os.environ.get("CALHUB_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ops-browser"
REFERRALS = "referrals.referral.v1"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("/usr/bin/chromium is missing; CI must run the browser tests")
    pytest.skip("/usr/bin/chromium is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Console:
    base_url: str
    bus: InProcessBus
    consumer: FlakyConsumer


@pytest.fixture
async def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    """The ops service with a real HTTP port, the in-process bus and a consumer that fails until healed."""
    _require_chromium()
    monkeypatch.setenv("OPS_ALERT_INTERVAL_SECONDS", "3600")
    monkeypatch.setenv("OPS_TRACE_URL_TEMPLATE", "http://jaeger.test/trace/{trace_id}")
    configure_tracing("calhub-ops-browser-test")
    platform = PlatformSettings(mode="embedded", data_dir=tmp_path)
    bus = InProcessBus()
    ops = definition()
    runtime = ServiceRuntime(definition=ops, platform=platform, settings=ops.settings(), bus=bus)
    app = create_api(title="CalHub ops (browser test)", bus=bus, runtimes=[runtime],
                     authenticator=StaticAuthenticator(callers()))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    consumer = FlakyConsumer()
    await bus.subscribe("claims", [REFERRALS], consumer, policy=RetryPolicy(max_attempts=1))
    try:
        yield Console(base_url=f"http://127.0.0.1:{port}", bus=bus, consumer=consumer)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_ops_console_end_to_end(console: Console) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with tracer.start_as_current_span("POST /v1/referrals"):  # the events carry a traceparent, as in production
        referral = referral_received("ref_browser", at=now - timedelta(hours=2))
        requested = authorization_requested(referral, "auth_browser", referral_id="ref_browser",
                                            at=now - timedelta(hours=2), decision_due=now + timedelta(hours=5))
    console.consumer.failing.add(str(referral.id))
    await console.bus.publish(messages(referral, requested))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()

            # Log in: a key without the ops scope is refused, the hub's ops key gets a session.
            await page.goto(console.base_url + "/ops/")
            await expect(page.locator("h1")).to_have_text("Log in to the ops console")
            await page.fill("#api_key", NO_OPS_KEY)
            await page.click("#login")
            await expect(page.locator(".error")).to_contain_text("lacks the ops scope")
            await page.fill("#api_key", HUB_KEY)
            await page.click("#login")
            await expect(page.locator("h1")).to_contain_text("Flow overview")
            cookie = next(c for c in await context.cookies() if c["name"] == "calhub_ops_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            await expect(page.locator("#health")).to_contain_text("ops")
            await page.screenshot(path=str(ARTIFACTS / "01-overview.png"), full_page=True)

            # Find the referral's timeline: its own event and the authorization it caused, with trace links.
            await page.click("text=Timeline")
            await page.select_option("#kind", "referral_id")
            await page.fill("#value", "ref_browser")
            await page.click("#find")
            rows = page.locator("#timeline tbody tr")
            await expect(rows.first).to_contain_text("referral.received")
            await expect(page.locator("#timeline")).to_contain_text("authorization.requested")
            trace_link = page.locator("#timeline a[href^='http://jaeger.test/trace/']").first
            await expect(trace_link).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "02-timeline.png"), full_page=True)

            # The referral's event failed in the `claims` group: replay it from the console and see it handled.
            await page.click("text=Dead letters")
            await expect(page.locator("#dead-letters")).to_contain_text("referral.received")
            await expect(page.locator("#dead-letters")).to_contain_text("PermanentError")
            await page.screenshot(path=str(ARTIFACTS / "03-dead-letters.png"), full_page=True)
            console.consumer.heal()
            await page.check("#dead-letters input[name=ids]")
            await page.click("#replay-selected")
            await expect(page.locator(".notice")).to_contain_text("Dead letters replayed")
            await page.goto(console.base_url + "/ops/dead-letters?status=replayed")
            for _ in range(100):
                if await page.locator(".outcome.handled").count():
                    break
                await asyncio.sleep(0.1)
                await page.reload()
            await expect(page.locator(".outcome.handled")).to_have_text("handled")
            assert console.consumer.handled == [str(referral.id)]
            await page.screenshot(path=str(ARTIFACTS / "04-replayed.png"), full_page=True)

            # SLA board: nothing overdue, then an MCP misses a decision deadline and the board shows it.
            await page.click("text=SLA boards")
            await expect(page.locator("#decisions")).to_contain_text("healthnet")
            await expect(page.locator("#decisions tr:has-text('healthnet') td.overdue")).to_have_text("0")
            late = authorization_requested(None, "auth_late", referral_id=None, at=now - timedelta(days=9),
                                           decision_due=now - timedelta(hours=6), cin="90000003C")
            await console.bus.publish(messages(late))
            for _ in range(100):
                await page.reload()
                if (await page.locator("#decisions tr:has-text('healthnet') td.overdue").text_content()) == "1":
                    break
                await asyncio.sleep(0.1)
            await expect(page.locator("#decisions tr:has-text('healthnet') td.overdue")).to_have_text("1")
            await expect(page.locator("#decisions")).to_contain_text("auth_late")
            await page.screenshot(path=str(ARTIFACTS / "05-board-changed.png"), full_page=True)

            # A forged form (no CSRF token) is refused even with a valid session.
            response = await page.request.post(console.base_url + "/ops/alerts/evaluate", form={"csrf": "forged"})
            assert response.status == 403
            await page.close()
            await context.close()
        finally:
            await browser.close()
