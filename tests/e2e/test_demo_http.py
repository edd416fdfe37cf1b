"""The demo's HTTP side, without a browser: log-in route, pages, helper, and the token it hands out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tether import Config, Server, run_server
from tether.sessions import get_manager, verify_token

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "login_timeout" / "tether.toml"


@pytest.fixture
async def demo() -> AsyncIterator[Server]:
    server = await run_server(Config.load(DEMO_CONFIG, env={}, overrides={"server": {"port": 0}}))
    try:
        yield server
    finally:
        await server.shutdown(timeout=2)


def test_demo_config_is_what_the_readme_says() -> None:
    session = Config.load(DEMO_CONFIG, env={}).session
    assert session.enabled
    assert (session.idle_timeout, session.warn_before, session.activity_interval) == (60, 20, 5)


async def test_log_in_route(demo: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{demo.url}/demo/login", json={"username": "alice"}) as resp:
            assert resp.status == 200
            data = await resp.json()
        claims = verify_token(data["token"], secret=demo.config.session.secret)
        assert claims.user_id == data["user_id"] == "alice"
        assert claims.session_id == data["session_id"]
        for bad in ({"username": ""}, {"username": "two words"}, {"username": "x" * 33}, [1]):
            async with http.post(f"{demo.url}/demo/login", json=bad) as resp:
                assert resp.status == 422
                assert (await resp.json())["code"] == 422
        async with http.post(f"{demo.url}/demo/login", data=b"not json") as resp:
            assert resp.status == 422
        for path, kind in [
            ("/", "text/html"),
            ("/app.html", "text/html"),
            ("/bare.html", "text/html"),
            ("/tether/session.js", "javascript"),
        ]:
            async with http.get(f"{demo.url}{path}") as resp:
                assert resp.status == 200, path
                assert kind in resp.headers["Content-Type"]
    assert get_manager(demo).counters.created == 0  # a token alone opens no session until a page connects
