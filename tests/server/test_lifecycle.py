"""The pluggable lifecycle handler and parser, named in config, on a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.apps.custom import RecordingHandler
from tests.conftest import ServerFactory, make_config
from tests.helpers import scaled, wait_until
from tests.server.clients import SioClient
from tether import ConfigError, Router, Server, Socket


@pytest.fixture(autouse=True)
def _reset_handler() -> None:
    RecordingHandler.opened = []
    RecordingHandler.closed = []


async def test_handler_from_config_sees_requests_and_closes(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket={"handler": "tests.apps.custom:RecordingHandler"})
    client = SioClient(["websocket"])
    await client.connect(server.url + "/?via=test")
    (request,) = RecordingHandler.opened
    assert (request.method, request.path, request.remote) == ("GET", "/socket.io/", "127.0.0.1")
    assert request.query["via"] == "test" and request.query["transport"] == "websocket"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"  # lower-cased names
    eio_sid = next(iter(server.clients))
    await client.close()
    await wait_until(lambda: RecordingHandler.closed != [], what="on_close")
    assert RecordingHandler.closed == [(eio_sid, "transport close")]


async def test_handler_refusal_on_every_endpoint(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket={"handler": "tests.apps.custom:RecordingHandler"})
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&deny=1"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 403
        assert await r.json() == {"code": 4, "message": "Connection refused"}
    for path in ("/socket.io/?EIO=4&transport=websocket&deny=1", "/ws?deny=1&token=secret"):
        with pytest.raises(InvalidStatus) as info:
            await connect(f"ws://127.0.0.1:{server.port}{path}", open_timeout=scaled(5))
        assert info.value.response.status_code == 403
    assert len(RecordingHandler.opened) == 3
    assert server.connection_count == 0 and RecordingHandler.closed == []


def pipe_router() -> Router:
    r = Router()

    @r.on("chat")
    async def chat(socket: Socket, data: dict[str, str]) -> None:
        await socket.emit("chat", {"echo": data["text"]})

    return r


async def test_user_parser_from_config(server_factory: ServerFactory) -> None:
    server = await server_factory(pipe_router(), websocket={"parser": "tests.apps.custom:PipeParser"})
    async with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=scaled(5)) as ws:
        await ws.send('chat|{"text":"hi"}')
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == 'chat|{"echo":"hi"}'
        await ws.send("no pipe here")
        await asyncio.wait_for(ws.wait_closed(), scaled(5))
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (1002, "expected 'event|json'")


@pytest.mark.parametrize(
    ("section", "key", "value", "reason"),
    [
        (
            "websocket",
            "websocket.parser",
            "tests.apps.custom:NOT_A_PARSER",
            "is not a tether.Parser subclass",
        ),
        ("websocket", "websocket.parser", "tests.apps.nowhere:P", "cannot load"),
        ("websocket", "websocket.handler", "tests.apps.custom:Missing", "cannot load"),
    ],
)
def test_bad_handler_or_parser_fails_at_start(section: str, key: str, value: str, reason: str) -> None:
    config = make_config(**{section: {key.split(".")[1]: value}})
    with pytest.raises(ConfigError) as info:
        Server(config, Router())
    assert info.value.key == key
    assert reason in info.value.reason


def test_route_file_from_config(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "routes.py").write_text(
        "from tether import websocket\n\n@websocket.on('echo')\ndef echo(socket, data):\n    return data\n"
    )
    config = make_config(websocket={"route_file": str(folder / "routes.py")})
    server = Server(config)
    assert server.router.events("/") == ["echo"]
    (folder / "broken.py").write_text("def (:\n")
    with pytest.raises(ConfigError, match="SyntaxError"):
        Server(make_config(websocket={"route_file": str(folder / "broken.py")}))


async def test_limits_refuse_with_503(server_factory: ServerFactory) -> None:
    server = await server_factory(limits={"max_connections": 1})
    first = SioClient(["websocket"])
    try:
        await first.connect(server.url)
        url = f"{server.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 503
            assert orjson.loads(await r.read()) == {"code": 4, "message": "Connection refused"}
        await first.echo_works()
    finally:
        await first.close()
