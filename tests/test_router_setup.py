"""``Router.setup``: a route file wires what needs the server itself (HTTP routes, hooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tether import Config, ConfigError, Router, Server, run_server
from tether.router import load_route_file


def test_setup_functions_move_with_the_routes_and_run_once(tmp_path: Path) -> None:
    (tmp_path / "routes.py").write_text(
        "from tether import websocket\n"
        "CALLS = []\n"
        "@websocket.on('ping')\n"
        "def ping(socket):\n"
        "    return 'pong'\n"
        "@websocket.setup\n"
        "def wire(server):\n"
        "    CALLS.append(server)\n"
        "    server.extensions['wired'] = True\n"
    )
    router = load_route_file("routes.py", base_dir=str(tmp_path))
    assert len(router.setups) == 1
    from tether import websocket

    assert websocket.setups == []  # moved to the loaded router, so a reload starts afresh
    server = Server(Config.load(env={}), router)
    assert server.extensions["wired"] is True
    assert router.setups[0].__globals__["CALLS"] == [server]


def test_setup_needs_a_callable() -> None:
    with pytest.raises(ConfigError):
        Router().setup("not callable")  # type: ignore[type-var]


async def test_setup_can_add_an_http_route() -> None:
    router = Router()

    async def hello(request: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "text/plain"}, b"hello " + body

    router.setup(lambda server: server.add_http_route("POST", "/hello", hello))
    server = await run_server(Config.load(env={}, overrides={"server": {"port": 0}}), router)
    try:
        async with aiohttp.ClientSession() as http, http.post(f"{server.url}/hello", data=b"there") as resp:
            assert resp.status == 200
            assert await resp.text() == "hello there"
    finally:
        await server.shutdown(timeout=2)
