"""The three example apps (examples/group_chat, examples/rooms, examples/whiteboard) in headless Chromium.

Each test starts the example from its own tether.toml (port 0; the official client served from npm's
socket.io-client/dist) and drives two or three pages, each in its own browser profile, as people would:
typing, clicking, drawing with the mouse. One browser for the module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser import launch_chromium, new_page
from tests.helpers import scaled, wait_until
from tether import Config, Server, run_server

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIST = ROOT / "tests" / "js" / "node_modules" / "socket.io-client" / "dist"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_chromium() as b:
        yield b


class Pages:
    """Pages of one example, each in its own profile; every page error fails the test."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser, self.url = browser, url
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def open(self) -> Page:
        context, page = await new_page(self.browser)
        self.contexts.append(context)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        await page.goto(self.url + "/")
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def example(request: pytest.FixtureRequest, browser: Browser) -> AsyncIterator[tuple[Server, Pages]]:
    assert CLIENT_DIST.exists(), "run `npm install` in tests/js (make test does)"
    config = Config.load(
        ROOT / "examples" / request.param / "tether.toml",
        env={},
        overrides={"server": {"port": 0}, "websocket": {"client_dir": str(CLIENT_DIST)}},
    )
    server = await run_server(config)
    pages = Pages(browser, server.url)
    try:
        yield server, pages
        assert pages.errors == []
    finally:
        await pages.close()
        await server.shutdown(timeout=scaled(5))


TIMEOUT = scaled(5) * 1000


async def join_chat(page: Page, nickname: str) -> None:
    await page.get_by_label("Your nickname").fill(nickname)
    await page.get_by_role("button", name="Join").click()


@pytest.mark.parametrize("example", ["group_chat"], indirect=True)
async def test_group_chat(example: tuple[Server, Pages]) -> None:
    _server, pages = example
    ann, bob = await pages.open(), await pages.open()
    await join_chat(ann, "ann")
    await expect(ann.locator("#online")).to_have_text("1 online", timeout=TIMEOUT)
    await join_chat(bob, "bob")
    await expect(bob.locator("#online")).to_have_text("2 online", timeout=TIMEOUT)
    await expect(ann.locator("#messages")).to_contain_text("bob joined", timeout=TIMEOUT)
    await expect(ann.locator("#online")).to_have_text("2 online")

    # A nickname is one person's: a third page asking for "Ann" is told so and stays out.
    third = await pages.open()
    await join_chat(third, "Ann")
    await expect(third.get_by_role("alert")).to_have_text("Ann is taken", timeout=TIMEOUT)

    # bob types: ann sees it; bob sends: ann sees the message and the indicator goes.
    await bob.get_by_role("textbox", name="Message").press_sequentially("hel")
    await expect(ann.locator("#typing")).to_have_text("bob is typing…", timeout=TIMEOUT)
    await bob.get_by_role("textbox", name="Message").press_sequentially("lo ann")
    await bob.get_by_role("button", name="Send").click()
    await expect(ann.locator("#messages li").last).to_have_text("bob hello ann", timeout=TIMEOUT)
    await expect(ann.locator("#typing")).to_have_text("")
    await expect(bob.locator("#messages li.mine")).to_have_text("bob hello ann")

    # Typing then stopping (no send): the indicator goes after the page's idle delay.
    await ann.get_by_role("textbox", name="Message").press_sequentially("hmm")
    await expect(bob.locator("#typing")).to_have_text("ann is typing…", timeout=TIMEOUT)
    await expect(bob.locator("#typing")).to_have_text("", timeout=TIMEOUT)

    await pages.contexts[1].close()  # bob's tab goes away
    await expect(ann.locator("#messages")).to_contain_text("bob left", timeout=TIMEOUT)
    await expect(ann.locator("#online")).to_have_text("1 online")


@pytest.mark.parametrize("example", ["rooms"], indirect=True)
async def test_rooms_join_leave_close_and_disconnect(example: tuple[Server, Pages]) -> None:
    server, pages = example
    a, b = await pages.open(), await pages.open()
    for page in (a, b):
        await expect(page.locator("#status")).to_have_text("connected", timeout=TIMEOUT)
        await page.get_by_label("Room", exact=True).fill("r1")
        await page.get_by_role("button", name="Join").click()
        await expect(page.locator("#my-rooms")).to_have_text("r1", timeout=TIMEOUT)
    await expect(a.locator("#log")).to_contain_text("joined r1 (2 in it)", timeout=TIMEOUT)

    await a.get_by_label("Message to the room above").fill("hello r1")
    await a.get_by_role("button", name="Send").click()
    await expect(b.locator("#log li.said")).to_have_text(["[r1] " + await sid_of(a) + ": hello r1"])
    await expect(a.locator("#log li.said")).to_have_text(["[r1] you: hello r1"], timeout=TIMEOUT)

    # b leaves: what a says next does not reach b.
    await b.get_by_role("button", name="Leave").click()
    await expect(b.locator("#my-rooms")).to_have_text("none", timeout=TIMEOUT)
    await expect(a.locator("#log")).to_contain_text("left r1 (1 in it)", timeout=TIMEOUT)
    await a.get_by_label("Message to the room above").fill("only me")
    await a.get_by_role("button", name="Send").click()
    await expect(a.locator("#log li.said")).to_have_count(2, timeout=TIMEOUT)
    await b.get_by_role("button", name="Join").click()
    await expect(b.locator("#my-rooms")).to_have_text("r1", timeout=TIMEOUT)
    await expect(b.locator("#log li.said")).to_have_count(1)

    # Close the room: both pages are told, both leave it, and the server agrees.
    await a.get_by_role("button", name="Close room").click()
    for page in (a, b):
        await expect(page.locator("#log")).to_contain_text("r1 was closed", timeout=TIMEOUT)
        await expect(page.locator("#my-rooms")).to_have_text("none")
    assert await server.to("r1").count() == 0

    # Disconnect: the server ends b's socket; the page says so.
    sid = await sid_of(b)
    await b.get_by_role("button", name="Disconnect").click()
    await expect(b.locator("#status")).to_have_text("disconnected", timeout=TIMEOUT)
    await expect(b.locator("#log")).to_contain_text("io server disconnect")
    await wait_until(lambda: server.get_socket(sid) is None, 5, "b's socket to be gone")
    assert server.get_socket(await sid_of(a)) is not None


async def sid_of(page: Page) -> str:
    return str(await page.evaluate("document.getElementById('sid').textContent.replace('as ', '')"))


INK = """(() => {
  const c = document.getElementById("board");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && data[i] > 150 && data[i + 1] < 100) n++;
  return n;
})()"""
"""How many pixels of the board are red (the page's default colour), as the page drew them."""


async def draw_line(page: Page) -> None:
    box = await page.locator("#board").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * 0.2, y)
    await page.mouse.down()
    for i in range(1, 11):
        await page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * i), y)
    await page.mouse.up()


@pytest.mark.parametrize("example", ["whiteboard"], indirect=True)
async def test_whiteboard_strokes_reach_every_page_and_late_comers(example: tuple[Server, Pages]) -> None:
    _server, pages = example
    a, b = await pages.open(), await pages.open()
    for page in (a, b):
        await expect(page.locator("#status")).to_have_text("connected", timeout=TIMEOUT)
    assert await b.evaluate(INK) == 0
    await draw_line(a)
    drawn = await a.evaluate(INK)
    assert drawn > 100
    # The same strokes on a board of the same size: about as many red pixels (antialiasing differs a bit).
    await ink_until(b, lambda n: n >= drawn * 0.9, "the strokes on the other page")

    late = await pages.open()  # gets the drawing so far on connect
    await ink_until(late, lambda n: n >= drawn * 0.9, "the drawing so far on a new page")

    await b.get_by_role("button", name="Clear for everyone").click()
    for page in (a, b, late):
        await ink_until(page, lambda n: n == 0, "a clear board")
    await late.reload()
    await expect(late.locator("#status")).to_have_text("connected", timeout=TIMEOUT)
    assert await late.evaluate(INK) == 0


async def ink_until(page: Page, ok: Callable[[int], bool], what: str) -> None:
    """Poll the page's red pixel count (every 50 ms, for at most ``scaled(5)`` s) until ``ok`` says yes."""
    for _ in range(int(scaled(5) / 0.05)):
        if ok(await page.evaluate(INK)):
            return
        await page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}: {await page.evaluate(INK)} red pixels")
