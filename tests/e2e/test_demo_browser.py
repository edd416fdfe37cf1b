"""The log-in timeout demo (examples/login_timeout) in headless Chromium, with idle_timeout = 3 s.

Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser). The server runs in this
process, so the tests read its session counters directly; Playwright records every WebSocket frame and
HTTP request the page sends, so "nothing but heartbeats while idle" is checked from both ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers import scaled, wait_until
from tether import Config, Server, run_server
from tether.sessions import Session, get_manager

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "examples" / "login_timeout" / "tether.toml"
SOCKET_IO_CLIENT = ROOT / "tests" / "js" / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
IDLE = scaled(3.0)
"""Session idle timeout: scaled, or on a loaded machine a second tab finds the session already expired."""
WARN = 1.0
ACTIVITY_INTERVAL = 1.0
PING_INTERVAL = 1.0

# Notes in the page when the modal (helper) or the <dialog> (bare page) appears, by the page's own clock.
WATCH_MODAL = """
window.__modalAt = null;
new MutationObserver(() => {
  const dialog = document.getElementById("expired");
  const modal = document.getElementById("tether-session-modal") || (dialog && dialog.open);
  if (window.__modalAt === null && modal) {
    window.__modalAt = Date.now();
  }
}).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ["open"] });
"""


@dataclass
class Traffic:
    """What the page sent: WebSocket frames and HTTP requests, with the time they left."""

    frames: list[tuple[float, str]] = field(default_factory=list)
    requests: list[tuple[float, str, str]] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_websocket(ws: Any) -> None:
            ws.on("framesent", lambda payload: self.frames.append((time.time(), _text(payload))))

        page.on("websocket", on_websocket)
        page.on("request", lambda req: self.requests.append((time.time(), req.method, req.url)))

    def frames_since(self, t: float) -> list[str]:
        return [f for at, f in self.frames if at >= t]

    def requests_since(self, t: float) -> list[tuple[str, str]]:
        return [(m, u) for at, m, u in self.requests if at >= t]


def _text(payload: str | bytes) -> str:
    return payload if isinstance(payload, str) else f"<{len(payload)} binary bytes>"


# One browser for the module (launching Chromium is the slow part); one event loop for the module with it.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def demo(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """The demo with IDLE s sessions, or ``request.param`` s for a test that must not see one expire."""
    idle = getattr(request, "param", IDLE)
    config = Config.load(
        DEMO_CONFIG,
        env={},
        overrides={
            "server": {"port": 0},
            "session": {"idle_timeout": idle, "warn_before": WARN, "activity_interval": ACTIVITY_INTERVAL},
            "websocket": {"ping_interval": PING_INTERVAL, "ping_timeout": 5.0},
        },
    )
    server = await run_server(config)
    try:
        yield server
    finally:
        await server.shutdown(timeout=2)


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
async def profile(demo: Server, browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (its own localStorage), closed before the demo server stops."""
    context = await browser.new_context()
    try:
        yield context
    finally:
        await context.close()


async def new_page(context: BrowserContext, with_socket_io: bool = False) -> tuple[Page, Traffic]:
    page = await context.new_page()
    await page.add_init_script(WATCH_MODAL)
    if with_socket_io:
        assert SOCKET_IO_CLIENT.exists(), "run `npm install` in tests/js (make test does)"
        await page.add_init_script(path=str(SOCKET_IO_CLIENT))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    traffic = Traffic()
    traffic.attach(page)
    page.errors = errors  # type: ignore[attr-defined]
    return page, traffic


async def log_in(page: Page, server: Server, name: str = "alice", then: str = "app.html") -> Session:
    await page.goto(f"{server.url}/index.html?next={then}")
    await page.fill("#username", name)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**/{then}")
    return await wait_connected(page, server)


async def wait_connected(page: Page, server: Server) -> Session:
    await page.wait_for_selector("#status:has-text('connected')", timeout=scaled(5000))
    session_id = await page.evaluate("JSON.parse(localStorage.getItem('tether-demo')).session_id")
    session = get_manager(server).get(session_id)
    assert session is not None
    return session


def wall_deadline(session: Session) -> float:
    """The session's deadline (loop time) on the wall clock that Date.now() in the page also reads."""
    return time.time() + (session.deadline - asyncio.get_running_loop().time())


async def modal_time(page: Page) -> float:
    await page.wait_for_function("window.__modalAt !== null", timeout=(IDLE + 3) * scaled(1000))
    return float(await page.evaluate("window.__modalAt")) / 1000


# -- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_socket_io", [False, True], ids=["bare-websocket", "socket.io-client"])
async def test_idle_page_gets_the_modal_and_sends_only_heartbeats(
    demo: Server, profile: BrowserContext, with_socket_io: bool
) -> None:
    page, traffic = await new_page(profile, with_socket_io=with_socket_io)
    session = await log_in(page, demo)
    assert (
        await page.text_content("#status") == f"connected ({'socket.io' if with_socket_io else 'websocket'})"
    )
    # The page load itself is reported once; from then on the user does nothing.
    await wait_until(lambda: session.activity == 1, 3)
    idle_from = time.time()
    events_before = session.events

    # The warning banner comes warn_before seconds ahead (a polite status, not a modal).
    await page.wait_for_selector("#tether-session-warning[role=status]", timeout=(IDLE + 1) * scaled(1000))
    shown_at = await modal_time(page)
    deadline = wall_deadline(session)
    assert -0.05 <= shown_at - deadline <= scaled(1.0), (
        f"modal {shown_at - deadline:+.3f} s from the deadline"
    )

    # Accessible: a modal dialog with the message, focus inside it, the page behind inert.
    dialog = page.locator("#tether-session-modal [role=dialog]")
    assert await dialog.get_attribute("aria-modal") == "true"
    assert await dialog.get_attribute("data-kind") == "expired"
    title = await page.text_content("#" + str(await dialog.get_attribute("aria-labelledby")))
    assert title == "Your session has expired - log in again"
    assert await page.evaluate("document.activeElement.closest('[role=dialog]') !== null")
    assert await page.evaluate("document.querySelector('main').inert")
    assert await page.text_content("#status") == "expired"

    # What the page sent while idle: heartbeats only. Server side: no event at all from the session.
    assert session.events == events_before
    sent = traffic.frames_since(idle_from)
    if with_socket_io:
        # Engine.IO pongs ("3") answering the server's pings, and the closing "41" of the expired socket.
        heartbeats = [f for f in sent if f == "3"]
        assert len(heartbeats) >= 1
        assert [f for f in sent if f not in ("3", "41")] == [], sent
    else:
        # The bare endpoint uses WebSocket ping frames, answered by the browser below the page's reach.
        assert [f for f in sent if f not in ("41",)] == [], sent
    posts = [r for r in traffic.requests_since(idle_from) if r[0] == "POST"]
    assert posts == []
    assert session.activity == 1
    assert get_manager(demo).counters.expired == 1

    # The log-in button leads back to the log-in page.
    await page.click("#tether-session-modal button")
    await page.wait_for_url("**/index.html*")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_activity_keeps_the_session_and_is_throttled(demo: Server, profile: BrowserContext) -> None:
    page, traffic = await new_page(profile)
    session = await log_in(page, demo)
    await wait_until(lambda: session.activity == 1, 3)
    start = time.monotonic()
    moves = 0
    # Well past the idle timeout, a user moving the mouse every 100 ms.
    while time.monotonic() - start < 1.7 * IDLE:
        await page.mouse.move(100 + moves % 200, 100 + moves % 150)
        moves += 1
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert await page.evaluate("window.__modalAt") is None
    assert await page.query_selector("#tether-session-modal") is None
    assert get_manager(demo).get(session.id) is session
    assert await page.text_content("#status") == "connected (websocket)"
    # Dozens of DOM events, a handful of messages: at most one per activity_interval (plus the page load).
    reports = session.activity - 1
    assert moves >= 20
    assert 2 <= reports <= 1.7 * IDLE / ACTIVITY_INTERVAL + 1, reports
    # Playwright reports a sent frame asynchronously: the server may have counted the last one first.
    await wait_until(
        lambda: [f for _, f in traffic.frames].count('42["activity"]') == session.activity,
        3,
        "every activity report seen leaving the page",
    )


async def test_two_tabs_of_one_user_both_show_the_modal(demo: Server, profile: BrowserContext) -> None:
    tab1, _ = await new_page(profile)
    session = await log_in(tab1, demo)
    tab2, _ = await new_page(profile)
    await tab2.goto(f"{demo.url}/app.html")  # same browser, same stored token: the same session
    assert await wait_connected(tab2, demo) is session
    await wait_until(lambda: session.activity == 2, 3)
    times = [await modal_time(tab1), await modal_time(tab2)]
    deadline = wall_deadline(session)
    for shown_at in times:
        assert -0.05 <= shown_at - deadline <= scaled(1.0)
    for tab in (tab1, tab2):
        assert await tab.get_attribute("#tether-session-modal [role=dialog]", "data-kind") == "expired"


# Sessions that outlive the test: with IDLE s, a slow second tab found the session already expired (the
# page said "expired", never "connected") on a loaded machine.
@pytest.mark.parametrize("demo", [60.0], indirect=True)
async def test_log_out_in_one_tab_reaches_the_other(demo: Server, profile: BrowserContext) -> None:
    tab1, _ = await new_page(profile)
    session = await log_in(tab1, demo)
    tab2, _ = await new_page(profile)
    await tab2.goto(f"{demo.url}/app.html")
    await wait_connected(tab2, demo)
    clicked = time.time()
    await tab1.click("#logout")
    await tab1.wait_for_url("**/index.html")
    shown_at = await modal_time(tab2)
    assert shown_at - clicked <= scaled(1.0)
    dialog = tab2.locator("#tether-session-modal [role=dialog]")
    assert await dialog.get_attribute("data-kind") == "ended"
    assert await tab2.text_content("#tether-session-title") == "You have been logged out - log in again"
    assert await tab2.text_content("#status") == "logged out"
    manager = get_manager(demo)
    assert manager.get(session.id) is None and manager.is_ended(session.id)
    assert not demo.is_user_online("alice")
    # Logging in again gives a new session that works.
    fresh = await log_in(tab1, demo)
    assert fresh.id != session.id


async def test_bare_websocket_page(demo: Server, profile: BrowserContext) -> None:
    page, traffic = await new_page(profile)
    session = await log_in(page, demo, then="bare.html")
    token = await page.evaluate("JSON.parse(localStorage.getItem('tether-demo')).token")
    # The article's loginCheck, asked once and answered once.
    await page.wait_for_selector("#log:has-text('\"code\":200')")
    await wait_until(lambda: session.events == 1, 3)
    idle_from = time.time()
    shown_at = await modal_time(page)
    deadline = wall_deadline(session)
    assert -0.05 <= shown_at - deadline <= scaled(1.0)
    assert await page.evaluate("document.getElementById('expired').open")
    assert await page.text_content("#expired-title") == "Your session has expired - log in again"
    assert await page.evaluate("document.activeElement.id") == "login-again"
    assert session.events == 1
    assert traffic.frames_since(idle_from) == []
    # Everything the page ever sent: one loginCheck (the article sent one every 50 ms).
    assert [f for _, f in traffic.frames] == [f'42["loginCheck",{{"holding":"{token}"}}]']
