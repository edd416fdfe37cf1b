"""A plain ASGI 3 application for the app-mounting tests: JSON in, a streamed body out, a WebSocket route,
and a lifespan that records itself (in ``EVENTS``, and in the file named by ``TETHER_TEST_LIFESPAN_LOG``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

EVENTS: list[str] = []

Scope = dict[str, Any]


def _note(event: str) -> None:
    EVENTS.append(event)
    log = os.environ.get("TETHER_TEST_LIFESPAN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{event} {os.getpid()}\n")


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("TETHER_TEST_LIFESPAN_FAIL"):
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                _note("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _note("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "app:" + message.get("text", "")})
    path = scope["path"]
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        data = json.loads(body)
        out = json.dumps({"got": data, "pid": os.getpid(), "root_path": scope["root_path"]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": out})
        return
    if path == "/slow":
        await asyncio.sleep(0.3)
    if path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for i in range(3):
            await send({"type": "http.response.body", "body": f"part{i}\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"end\n"})
        return
    text = f"app page {path} pid {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


async def _own_ws(websocket: Any) -> None:
    await websocket.accept()
    await websocket.send_text("from the app")
    await websocket.close()


async def _page(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("page")


def _starlette_app() -> Any:
    # A Starlette app whose own WebSocket route sits on Tether's bare WebSocket path (FastAPI's usual /ws),
    # and with its own /metrics (prometheus-fastapi-instrumentator's), Tether's too when [metrics] key is set.
    from starlette.applications import Starlette
    from starlette.routing import Route, WebSocketRoute

    return Starlette(routes=[WebSocketRoute("/ws", _own_ws), Route("/page", _page), Route("/metrics", _page)])


starlette_app = _starlette_app()
