"""Real clients for the server tests: python-socketio's AsyncClient, wrapped to record what it receives.

Everything a client receives lands in one queue per (namespace, event), so a test reads it in order with
a bounded wait; a ``question`` event from the server is answered through its ack, so server-to-client
acks are exercised by every client.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

import socketio

from tests.helpers import scaled, wait_until

TRANSPORTS: dict[str, list[str] | None] = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "upgrade": None,  # the default: polling first, then the upgrade to WebSocket
}

_counter = itertools.count()


class SioClient:
    """A python-socketio AsyncClient that records events, disconnect reasons and connect errors."""

    def __init__(self, transports: list[str] | None = None) -> None:
        self.transports = transports
        self.sio = socketio.AsyncClient(reconnection=False, request_timeout=scaled(5))
        self.queues: defaultdict[tuple[str, str], asyncio.Queue[tuple[Any, ...]]] = defaultdict(asyncio.Queue)
        self.disconnects: list[tuple[str, str]] = []
        self.connect_errors: list[tuple[str, Any]] = []
        self.questions: list[Any] = []
        # Everything on namespace "*": a handler registered for one namespace hides the "*" catch-all there.
        self.sio.on("*", self._on_any, namespace="*")
        self.sio.on("disconnect", self._on_disconnect, namespace="*")
        self.sio.on("connect_error", self._on_connect_error, namespace="*")
        self.sio.on("question", self._on_question, namespace="*")

    def _on_any(self, event: str, namespace: str, *args: Any) -> None:
        self.queues[(namespace, event)].put_nowait(args)

    def _on_disconnect(self, namespace: str, reason: str = "") -> None:
        self.disconnects.append((namespace, reason))

    def _on_connect_error(self, namespace: str, data: Any = None) -> None:
        self.connect_errors.append((namespace, data))

    def _on_question(self, namespace: str, data: Any) -> Any:
        self.questions.append(data)
        return {"answer": data, "from": "python"}

    async def connect(
        self, url: str, auth: Any = None, namespaces: list[str] | None = None, wait_welcome: bool = True
    ) -> SioClient:
        await self.sio.connect(
            url,
            auth=auth if auth is not None else {"token": "secret"},
            transports=self.transports,
            namespaces=namespaces,
            wait_timeout=scaled(5),
        )
        if wait_welcome:
            for ns in namespaces or ["/"]:
                await self.next("welcome", ns)
        return self

    @property
    def sid(self) -> str:
        """The Socket.IO sid of the "/" namespace (what the server's socket.sid is)."""
        sid = self.sio.get_sid("/")
        assert sid is not None
        return sid

    async def next(self, event: str, namespace: str = "/", timeout: float = 5.0) -> tuple[Any, ...]:
        """The arguments of the next ``event`` received, waiting at most ``scaled(timeout)``."""
        try:
            return await asyncio.wait_for(self.queues[(namespace, event)].get(), scaled(timeout))
        except TimeoutError:
            raise AssertionError(f"no {event!r} on {namespace} within {scaled(timeout):g}s") from None

    def pending(self, event: str, namespace: str = "/") -> int:
        return self.queues[(namespace, event)].qsize()

    async def call(self, event: str, *args: Any, namespace: str = "/", timeout: float = 5.0) -> Any:
        """Emit with an ack and return what the server answered (a tuple when it answered several values)."""
        data: Any = args[0] if len(args) == 1 else args
        return await self.sio.call(event, data, namespace=namespace, timeout=scaled(timeout))

    async def emit(self, event: str, *args: Any, namespace: str = "/") -> None:
        data: Any = args[0] if len(args) == 1 else (args if args else None)
        await self.sio.emit(event, data, namespace=namespace)

    async def echo_works(self) -> None:
        """One full round trip (event, server emit, ack): the client is alive and served."""
        token = f"still-alive-{next(_counter)}"
        assert await self.call("echo", token) == token
        assert await self.next("echo") == (token,)

    async def wait_disconnected(self, timeout: float = 5.0) -> None:
        await wait_until(lambda: not self.sio.connected, timeout, "client disconnect")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.shutdown()
