"""The chat examples in headless Chromium: pages that load the official client from /socket.io/socket.io.js
(served by Tether) and talk to a Tether route file, two tabs seeing each other's messages."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser import launch_chromium
from tests.helpers import scaled
from tether import Config, run_server

ROOT = Path(__file__).resolve().parents[2]
NPM_CLIENT_DIST = ROOT / "tests" / "js" / "node_modules" / "socket.io-client" / "dist"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # Not tests/browser.py's new_page: the origin test needs "localhost" as well as 127.0.0.1.
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
    await page.wait_for_selector(".log:has-text('Welcome')", timeout=scaled(5000))


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
        await ann.wait_for_selector(".log:has-text('bob joined')", timeout=scaled(5000))
        await bob.fill("#message", "hello ann")
        await bob.press("#message", "Enter")
        msg = ann.locator(".message", has_text="hello ann")
        await msg.wait_for(timeout=scaled(5000))
        assert await msg.locator(".username").text_content() == "bob"
        # The page really used the client Tether served (not a copy of its own).
        assert await ann.evaluate("typeof io === 'function'")
        await bob.close()
        await ann.wait_for_selector(".log:has-text('bob left')", timeout=scaled(5000))
        assert ann.errors == [] and bob.errors == []  # type: ignore[attr-defined]
    finally:
        await server.shutdown(timeout=2)


REFUSED_PAGE = """<!doctype html><html lang="en"><head><title>refused</title></head><body>
<script src="/socket.io/socket.io.js"></script>
<script src="/tether/session.js"></script>
<script>
  window.errors = [];
  const params = new URLSearchParams(location.search);
  Tether.session({
    token: "any", url: params.get("url"), transport: params.get("transport"), activityInterval: 30,
    ioOptions: { reconnectionDelay: 100 }, onError: (e) => window.errors.push(e),
  });
</script></body></html>
"""


@pytest.mark.parametrize("transport", ["websocket", "socket.io"])
async def test_session_js_reports_a_refused_origin(
    context: BrowserContext, tmp_path: Path, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "refused.html").write_text(REFUSED_PAGE)
    config = Config.load(
        None,
        env={},
        overrides={
            "server": {"port": 0, "static_dir": str(tmp_path)},
            "websocket": {"client_dir": str(NPM_CLIENT_DIST)},
        },
    )
    server = await run_server(config)
    try:
        # The page comes from 127.0.0.1, Tether is addressed as localhost: another origin, refused by the
        # default (same origin only).
        other = f"http://localhost:{server.port}"
        page = await open_page(context, f"{server.url}/refused.html?url={other}&transport={transport}")
        await page.wait_for_function("window.errors.length > 0", timeout=scaled(5000))
        await page.wait_for_timeout(500)  # retries go on; the error is reported once
        errors = await page.evaluate("window.errors")
        assert len(errors) == 1
        assert errors[0]["code"] == "origin"
        assert "[websocket] allowed_origins" in errors[0]["message"] and server.url in errors[0]["message"]
        warnings = [r.getMessage() for r in caplog.records if r.name == "tether.origins"]
        assert any(repr(server.url) in w for w in warnings)
        await page.close()
    finally:
        await server.shutdown(timeout=2)


async def log_in_fastapi(context: BrowserContext, url: str, name: str) -> Page:
    page = await open_page(context, url + "/")
    await page.fill("#name", name)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/chat")
    await page.wait_for_selector(f"#status:has-text('connected as {name}')", timeout=scaled(5000))
    return page


async def test_fastapi_chat(browser: Browser) -> None:
    config = Config.load(
        ROOT / "examples" / "fastapi_chat" / "tether.toml",
        env={},
        overrides={"server": {"port": 0}, "websocket": {"client_dir": str(NPM_CLIENT_DIST)}},
    )
    server = await run_server(config)
    contexts = [await browser.new_context() for _ in range(2)]  # two people: two cookie jars
    try:
        ann = await log_in_fastapi(contexts[0], server.url, "ann")
        bob = await log_in_fastapi(contexts[1], server.url, "bob")
        await bob.fill("#text", "hello from bob")
        await bob.press("#text", "Enter")
        line = ann.locator("#messages li", has_text="hello from bob")
        await line.wait_for(timeout=scaled(5000))
        # The sender's name comes from bob's FastAPI session, not from anything the page sent.
        assert await line.locator(".who").text_content() == "bob"
        # The app's own JSON API on the same port has the message too.
        history = await ann.evaluate("fetch('/history').then((r) => r.json())")
        assert [(m["user"], m["text"]) for m in history][-1:] == [("bob", "hello from bob")]
        assert server.is_user_online("ann") and server.is_user_online("bob")
        assert ann.errors == [] and bob.errors == []  # type: ignore[attr-defined]
    finally:
        for context in contexts:
            await context.close()
        await server.shutdown(timeout=2)


async def test_django_chat(browser: Browser, tmp_path: Path) -> None:
    # A process of its own: Django's settings are process-wide (tests/contrib configures other ones).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TETHER_") or k.startswith("TETHER_TESTS_")
    }
    env.update(
        TETHER_SERVER_PORT="0",
        TETHER_SERVER_PID_FILE=str(tmp_path / "t.pid"),
        TETHER_SERVER_CONTROL_SOCKET=str(tmp_path / "t.sock"),
        TETHER_WEBSOCKET_CLIENT_DIR=str(NPM_CLIENT_DIST),
        DJCHAT_DB=str(tmp_path / "db.sqlite3"),
    )
    folder = ROOT / "examples" / "django_chat"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether", "start", "-c", "tether.toml",
        cwd=folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    contexts: list[BrowserContext] = []
    try:
        assert proc.stdout is not None
        output = b""
        while b"tether serving on" not in output:
            line = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
            assert line, f"tether exited: {output.decode()}"
            output += line
        url = re.search(rb"tether serving on (http://\S+)", output).group(1).decode()  # type: ignore[union-attr]
        # Keep reading the log so that the process never blocks on a full pipe.
        drain = asyncio.ensure_future(proc.stdout.read())
        pages = []
        for name in ("ann", "bob"):
            context = await browser.new_context()
            contexts.append(context)
            page = await open_page(context, url + "/")
            await page.wait_for_url("**/login/?next=/")  # Django's login_required
            await page.fill("#id_username", name)
            await page.fill("#id_password", "demo-password")
            await page.click("button[type=submit]")
            await page.wait_for_selector(f"#status:has-text('connected as {name}')", timeout=scaled(10000))
            pages.append(page)
        ann, bob = pages
        await bob.fill("#text", "hello from django bob")
        await bob.press("#text", "Enter")
        line = ann.locator("#messages li", has_text="hello from django bob")
        await line.wait_for(timeout=scaled(5000))
        assert await line.locator(".who").text_content() == "bob"  # from bob's Django session
        history = await ann.evaluate("fetch('/history/').then((r) => r.json())")
        assert history[-1] == {"user": "bob", "text": "hello from django bob"}
        assert ann.errors == [] and bob.errors == []  # type: ignore[attr-defined]
        drain.cancel()
    finally:
        for context in contexts:
            await context.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), scaled(15))
            except TimeoutError:
                proc.kill()
                await proc.wait()
