"""The official Socket.IO admin UI (npm ``@socket.io/admin-ui``'s built ``ui/dist``) against Tether, in
headless Chromium.

The UI is served from its own origin (a static server on 127.0.0.1), as https://admin.socket.io would
be, so it connects cross-origin over polling then WebSocket, exactly as a user's browser would. Two
python-socketio clients are the application's users; the test logs in through the UI's form, reads the
sockets, rooms and servers pages, and disconnects a socket with the UI's button.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest
import pytest_asyncio
import socketio
from playwright.async_api import Browser, Page, expect

from tests.browser import launch_chromium, new_page, serve_folder
from tests.conftest import make_config
from tests.helpers import scaled, wait_until
from tests.test_asgi import serve
from tether import Config, Router, Server, Socket, run_server
from tether.admin import get_instrument
from tether.asgi import ASGIApp

UI = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
PASSWORD = "ui-test-password"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as b:
        yield b


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def ui_url() -> AsyncIterator[str]:
    assert (UI / "index.html").exists(), f"{UI} missing: make tests/js/node_modules/.installed"
    async with serve_folder(UI) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(ui_url: str) -> AsyncIterator[Server]:
    router = Router()

    @router.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    config = make_config(
        admin={"password": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(), "enabled": True},
        websocket={"allowed_origins": [ui_url]},
    )
    s = await run_server(config, router)
    try:
        yield s
    finally:
        await s.shutdown(timeout=scaled(5))


async def log_in(page: Page, ui_url: str, server: Server, password: str) -> None:
    await page.goto(ui_url + "/", wait_until="domcontentloaded")
    await page.get_by_label("Server URL").fill(server.url)
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Connect").click()


async def test_the_ui_lists_sockets_and_rooms_and_disconnects_a_socket(
    browser: Browser, ui_url: str, server: Server
) -> None:
    users = [socketio.AsyncClient(reconnection=False) for _ in range(2)]
    for user in users:
        await user.connect(server.url, transports=["websocket"], wait_timeout=scaled(5))
    stay, leave = (u.get_sid("/") or "" for u in users)
    assert await users[0].call("join", "lobby", timeout=scaled(5)) == "ok"
    context, page = await new_page(browser)
    timeout = scaled(10) * 1000
    try:
        await log_in(page, ui_url, server, "wrong password")
        await expect(page.get_by_text("Invalid credentials")).to_be_visible(timeout=timeout)

        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("header").get_by_text("connected", exact=True).first).to_be_visible(
            timeout=timeout
        )

        await page.get_by_role("navigation").get_by_role("link", name="Sockets").click()
        rows = page.locator("tbody tr")
        await expect(rows.filter(has_text=stay)).to_have_count(1, timeout=timeout)
        await expect(rows.filter(has_text=leave)).to_have_count(1, timeout=timeout)
        await expect(rows.filter(has_text=stay)).to_contain_text("WebSocket")

        await page.get_by_role("navigation").get_by_role("link", name="Rooms").click()
        await expect(page.locator("tbody tr").filter(has_text="lobby")).to_have_count(1, timeout=timeout)

        await page.get_by_role("navigation").get_by_role("link", name="Servers").click()
        server_id = get_instrument(server).server_id
        await expect(page.get_by_text(server_id)).to_be_visible(timeout=timeout)

        # An event sent now shows on the Events page (event_received), with its arguments.
        assert await users[0].call("join", "later", timeout=scaled(5)) == "ok"
        await page.get_by_role("navigation").get_by_role("link", name="Events").click()
        await expect(page.locator("tbody tr").filter(has_text="later").first).to_be_visible(timeout=timeout)

        # The disconnect button of one socket's row: the UI emits _disconnect(nsp, false, sid).
        await page.get_by_role("navigation").get_by_role("link", name="Sockets").click()
        await rows.filter(has_text=leave).get_by_role("button").click()
        await wait_until(lambda: server.get_socket(leave) is None, 10, "the socket to be disconnected")
        await wait_until(lambda: not users[1].namespaces, 10, "the client to learn it")
        # The click also opens the socket's details page (the row's own click), which now says so.
        status = page.locator("tbody tr").filter(has_text="Status").first
        await expect(status).to_contain_text("disconnected", ignore_case=True, timeout=timeout)
        await page.get_by_role("navigation").get_by_role("link", name="Sockets").click()
        await expect(rows.filter(has_text=stay)).to_have_count(1, timeout=timeout)
        await expect(rows.filter(has_text=leave)).to_have_count(0, timeout=timeout)
        assert server.get_socket(stay) is not None
    finally:
        await context.close()
        for user in users:
            await user.disconnect()
            await user.shutdown()


async def test_the_ui_served_by_asgiapp_on_tethers_own_origin(browser: Browser) -> None:
    # docs/admin-ui.md: the UI's files as ASGIApp static_files, on Tether's own origin (no allowed_origins),
    # the admin UI turned on by TETHER_ADMIN_PASSWORD alone, as under uvicorn configured by the environment.
    password = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    config = Config.load(None, env={"TETHER_ADMIN_PASSWORD": password}, overrides={"server": {"port": 0}})
    assert config.websocket.allowed_origins == ()
    app = ASGIApp(Router(), static_files={"/admin-ui/": str(UI) + "/"}, config=config)
    async with serve(app, "uvicorn") as url:
        context, page = await new_page(browser)
        timeout = scaled(10) * 1000
        try:
            await page.goto(url + "/admin-ui/", wait_until="domcontentloaded")
            await page.get_by_label("Server URL").fill(url)
            await page.get_by_label("Username").fill("admin")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Connect").click()
            await expect(page.locator("header").get_by_text("connected", exact=True).first).to_be_visible(
                timeout=timeout
            )
            await page.get_by_role("navigation").get_by_role("link", name="Servers").click()
            await expect(page.get_by_text(get_instrument(app.server).server_id)).to_be_visible(
                timeout=timeout
            )
        finally:
            await context.close()
