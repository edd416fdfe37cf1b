"""The demo's pages in headless Chromium: an axe-core audit of each state, and the rough edges of issue 12.

axe-core comes from npm (``tests/js/node_modules/axe-core``, installed by ``make test``); a page passes when
axe reports no violation of impact ``serious`` or ``critical``. The states audited: the log-in page (also
after a refused name), the helper's page connected with an empty log, with the helper's expiry modal up,
and the bare page with its native ``<dialog>`` open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests.browser import launch_chromium, new_page
from tests.helpers import scaled
from tether import Config, Server, run_server

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "examples" / "login_timeout" / "tether.toml"
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
IDLE = 2.0
REFUSED = "username: 1-32 letters, digits, '.', '_' or '-'"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def demo() -> AsyncIterator[Server]:
    config = Config.load(
        DEMO_CONFIG,
        env={},
        overrides={
            "server": {"port": 0},
            "session": {"idle_timeout": IDLE, "warn_before": 0.0, "activity_interval": 1.0},
        },
    )
    server = await run_server(config)
    try:
        yield server
    finally:
        await server.shutdown(timeout=2)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser


async def audit(page: Page, what: str) -> None:
    """Run axe-core on the page as it is now; fail on any serious or critical violation."""
    assert AXE.exists(), "axe-core is missing: run `npm install` in tests/js (make test does)"
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["html"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"axe-core, {what}:\n" + json.dumps(bad, indent=2)


async def log_in(page: Page, server: Server, then: str) -> None:
    await page.goto(f"{server.url}/index.html?next={then}")
    await page.fill("#username", "alice")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**/{then}")
    await page.wait_for_selector("#status:has-text('connected')", timeout=scaled(5000))


async def test_a_refused_name_shows_the_servers_message(demo: Server, browser: Browser) -> None:
    context, page = await new_page(browser)
    try:
        await page.goto(f"{demo.url}/index.html")
        assert not await page.is_visible("#error")  # no empty red paragraph before anything happened
        await audit(page, "the log-in page")
        await page.fill("#username", "not a valid name!")
        await page.click("button[type=submit]")
        await page.wait_for_selector("#error:not(:empty)", timeout=scaled(5000))
        assert await page.text_content("#error") == REFUSED  # the server's words, not the browser's
        assert await page.get_attribute("#username", "aria-invalid") == "true"
        assert await page.evaluate("document.activeElement.id") == "username"
        assert page.url.endswith("/index.html")
        await audit(page, "the log-in page after a refused name")
    finally:
        await context.close()


async def test_the_helper_page_and_its_modal(demo: Server, browser: Browser) -> None:
    context, page = await new_page(browser)
    try:
        await log_in(page, demo, "app.html")
        assert await page.get_attribute("#log", "role") == "log"
        assert await page.text_content("#log") == ""
        placeholder = await page.evaluate(
            "getComputedStyle(document.getElementById('log'), '::before').content"
        )
        assert "Nothing yet" in placeholder  # the empty box says what it is for, not a blank grey bar
        await audit(page, "app.html connected")
        await page.wait_for_selector("#tether-session-modal", timeout=(IDLE + 5) * scaled(1000))
        await page.wait_for_selector("#log:not(:empty)")
        await audit(page, "app.html with the expiry modal")
    finally:
        await context.close()


async def test_the_bare_page_and_its_dialog(demo: Server, browser: Browser) -> None:
    context, page = await new_page(browser)
    try:
        await log_in(page, demo, "bare.html")
        assert await page.get_attribute("#log", "role") == "log"
        await audit(page, "bare.html connected")
        await page.wait_for_function(
            "document.getElementById('expired').open", timeout=(IDLE + 5) * scaled(1000)
        )
        assert await page.evaluate("document.activeElement.id") == "login-again"
        style = await page.evaluate(
            """(() => {
                const b = getComputedStyle(document.activeElement);
                const d = getComputedStyle(document.getElementById('expired'));
                return {outline: b.outlineStyle, width: b.outlineWidth, radius: d.borderRadius,
                        border: d.borderTopStyle, shadow: d.boxShadow};
            })()"""
        )
        assert style["outline"] == "solid" and style["width"] == "3px", style  # a visible focus ring
        assert style["radius"] == "10px" and style["border"] == "none" and style["shadow"] != "none", style
        await audit(page, "bare.html with its <dialog> open")
    finally:
        await context.close()


async def test_the_audit_fails_on_a_serious_finding(demo: Server, browser: Browser) -> None:
    """The audit above can fail: a page with a nameless button and an image without alt text does."""
    context, page = await new_page(browser)
    try:
        await page.goto(f"{demo.url}/index.html")
        await page.set_content(
            '<html lang="en"><title>t</title><main><img src="x.png"><button></button></main>'
        )
        with pytest.raises(AssertionError, match="button-name") as info:
            await audit(page, "a broken page")
        assert "image-alt" in str(info.value)
    finally:
        await context.close()
