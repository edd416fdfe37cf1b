"""A user-written parser plugs in by name, as docs/guide.md shows."""

from __future__ import annotations

import asyncio

import websockets

from tests.helpers import scaled
from tether import Router


async def test_pipe_parser_from_config_on_bare_endpoint(server_factory) -> None:  # type: ignore[no-untyped-def]
    router = Router()

    @router.on("chat")
    async def chat(socket, text):  # type: ignore[no-untyped-def]
        await socket.emit("chat", text.upper())

    server = await server_factory(router, websocket={"parser": "tests.apps.pipe_parser:PipeParser"})
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send("chat|hello")
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "chat|HELLO"
