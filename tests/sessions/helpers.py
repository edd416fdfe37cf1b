"""Session test helpers: configs with [session] on 127.0.0.1:0, python-socketio clients that record pushes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from tests.helpers import scaled
from tether import Config, Server

SECRET = "test-secret-0123456789abcdef0123456789"


def session_config(**session: Any) -> Config:
    values: dict[str, Any] = {"enabled": True, "secret": SECRET}
    values.update(session)
    return Config.load(env={}, overrides={"server": {"port": 0}, "session": values})


class Recorder:
    """A python-socketio AsyncClient whose received events land in one queue, with arrival times."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()
        loop = asyncio.get_running_loop()

        @self.sio.on("*")
        async def any_event(event: str, *args: Any) -> None:
            self.events.put_nowait((event, args[0] if args else None, loop.time()))

        @self.sio.event
        async def connect_error(data: Any) -> None:
            self.connect_error = data

        @self.sio.event
        async def disconnect(*args: Any) -> None:
            self.disconnected.set()

    async def connect(self, url: str, token: str | None, transport: str = "websocket") -> None:
        auth = {"token": token} if token is not None else None
        await self.sio.connect(url, auth=auth, transports=[transport], wait_timeout=scaled(5))

    async def next_event(self, timeout: float) -> tuple[str, Any, float]:
        return await asyncio.wait_for(self.events.get(), scaled(timeout))

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


ServerFactory = Callable[..., Awaitable[Server]]
