"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (never a
downloaded browser), pages kept off the network, and a static file server on 127.0.0.1.

One browser per test module (launching Chromium is the slow part): a module-scoped fixture calls
:func:`launch_chromium`; each test opens its own context (its own profile) with :func:`new_page`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "launch_chromium", "new_page", "serve_folder"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def _loopback_only(route: Route) -> None:
    # Pages may link fonts or icons from a CDN: the tests never leave the machine (and never wait for it).
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
        await route.continue_()
    else:
        await route.abort()


async def new_page(browser: Browser) -> tuple[BrowserContext, Page]:
    """A fresh profile and a page in it that can reach 127.0.0.1 only. Close the context when done."""
    context = await browser.new_context()
    await context.route("**/*", _loopback_only)
    return context, await context.new_page()


@contextlib.asynccontextmanager
async def serve_folder(folder: Path) -> AsyncIterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port), ``/`` being its index.html; yields the URL."""
    app = web.Application()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(folder / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/", folder)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
