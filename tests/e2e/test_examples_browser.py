"""The chat examples in headless Chromium: pages that load the official client from /socket.io/socket.io.js
(served by Tether) and talk to a Tether route file, two tabs seeing each other's messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.test_demo_browser import CHROMIUM, CHROMIUM_ARGS, FACTOR
from tether import Config, run_server

ROOT = Path(__file__).resolve().parents[2]
NPM_CLIENT_DIST = ROOT / "tests" / "js" / "node_modules" / "socket.io-client" / "dist"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context()
    try:
        yield context
    finally:
        await context.close()


async def open_page(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def chat_as(page: Page, name: str) -> None:
    await page.fill("#username", name)
    await page.press("#username", "Enter")
    await page.wait_for_selector(".log:has-text('Welcome')", timeout=5000 * FACTOR)


async def test_socketio_chat_page_with_the_served_client(context: BrowserContext) -> None:
    assert NPM_CLIENT_DIST.exists(), "run `npm install` in tests/js (make test does)"
    config = Config.load(
        ROOT / "examples" / "chat" / "tether.toml",
        env={},
        overrides={"server": {"port": 0}, "websocket": {"client_dir": str(NPM_CLIENT_DIST)}},
    )
    server = await run_server(config)
    try:
        ann = await open_page(context, server.url + "/")
        await chat_as(ann, "ann")
        bob = await open_page(context, server.url + "/")
        await chat_as(bob, "bob")
        await ann.wait_for_selector(".log:has-text('bob joined')", timeout=5000 * FACTOR)
        await bob.fill("#message", "hello ann")
        await bob.press("#message", "Enter")
        msg = ann.locator(".message", has_text="hello ann")
        await msg.wait_for(timeout=5000 * FACTOR)
        assert await msg.locator(".username").text_content() == "bob"
        # The page really used the client Tether served (not a copy of its own).
        assert await ann.evaluate("typeof io === 'function'")
        await bob.close()
        await ann.wait_for_selector(".log:has-text('bob left')", timeout=5000 * FACTOR)
        assert ann.errors == [] and bob.errors == []  # type: ignore[attr-defined]
    finally:
        await server.shutdown(timeout=2)
