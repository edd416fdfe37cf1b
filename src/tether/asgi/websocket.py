"""The picows listener fed from ASGI messages: stand-ins for the few picows objects Tether touches.

:class:`~tether.server.websocket.WebSocketListener` is picows' listener; under an ASGI server it gets
:class:`AsgiWebSocket` as its transport (the calls of picows' ``WSTransport`` that Tether makes),
:class:`Frame` for each ASGI message and :class:`Upgrade` for the upgrade request. Outgoing messages are
queued and written in order by one task; past the high-water mark (``[limits] send_buffer_bytes``) the
listener is told to pause, as picows does, so a slow consumer is found the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from picows import WSMsgType

from .spec import Message, Send

__all__ = ["BINARY", "TEXT", "AsgiWebSocket", "Frame", "Upgrade"]

TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY


class Upgrade:
    """The field of picows' ``WSUpgradeRequest`` the listener factory reads (the headers come apart)."""

    __slots__ = ("path",)

    def __init__(self, path: bytes) -> None:
        self.path = path


class Frame:
    """One complete ASGI message as the listener reads a picows ``WSFrame``."""

    __slots__ = ("_payload", "fin", "msg_type")

    def __init__(self, msg_type: WSMsgType, payload: bytes) -> None:
        self.msg_type = msg_type
        self._payload = payload
        self.fin = True

    def get_payload_as_bytes(self) -> bytes:
        return self._payload

    def get_payload_as_utf8_text(self) -> str:
        return self._payload.decode()

    def get_close_code(self) -> int:
        return 1000


class _Underlying:
    """The ``underlying_transport`` of :class:`AsgiWebSocket`: its buffer is the queue of messages."""

    def __init__(self, ws: AsgiWebSocket) -> None:
        self.ws = ws

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.ws.high = high

    def get_write_buffer_size(self) -> int:
        return self.ws.buffered

    def is_closing(self) -> bool:
        return self.ws.closed


class AsgiWebSocket:
    """The calls of picows' ``WSTransport`` that Tether makes, on an ASGI WebSocket: ``send`` queues
    messages that one task writes in order with the ASGI ``send``."""

    def __init__(self, send: Send, listener: Any, high: int) -> None:
        self._send = send
        self.listener = listener
        self.high = high
        self.buffered = 0
        self.paused = False
        self.closed = False
        self.reported = False
        self.is_close_frame_sent = False
        self.close_handshake = None
        self.underlying_transport = _Underlying(self)
        self._queue: asyncio.Queue[tuple[Message, int] | None] = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write_forever())

    def send(self, msg_type: WSMsgType, message: bytes | str) -> None:
        if self.closed or self.is_close_frame_sent:
            return
        data = message.encode() if isinstance(message, str) else bytes(message)
        self.buffered += len(data)
        if msg_type == TEXT:
            self._queue.put_nowait(({"type": "websocket.send", "text": data.decode()}, len(data)))
        else:
            self._queue.put_nowait(({"type": "websocket.send", "bytes": data}, len(data)))
        if not self.paused and self.buffered > self.high:
            self.paused = True
            self.listener.pause_writing()

    def send_ping(self, message: bytes | None = None) -> None:
        pass  # ASGI has no ping: the ASGI server keeps the connection alive

    def send_close(self, close_code: int = 1000, close_message: bytes | None = None) -> None:
        if self.is_close_frame_sent or self.closed:
            return
        self.is_close_frame_sent = True
        reason = bytes(close_message or b"").decode("utf-8", "replace")
        self._queue.put_nowait(({"type": "websocket.close", "code": int(close_code), "reason": reason}, 0))

    def disconnect(self, graceful: bool = True) -> None:
        if not self.is_close_frame_sent:
            self.send_close(1000)
        self._queue.put_nowait(None)
        if not graceful:
            self._writer.cancel()

    def peer_gone(self) -> None:
        self.closed = True
        self._queue.put_nowait(None)

    async def flushed(self) -> None:
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError, OSError, RuntimeError):
            await self._writer

    async def _write_forever(self) -> None:
        queue = self._queue
        while True:
            item = await queue.get()
            if item is None:
                if self.is_close_frame_sent or self.closed:
                    return
                continue
            message, size = item
            if self.closed:
                return
            try:
                await self._send(message)
            except Exception:  # the ASGI server says the connection is gone (ClientDisconnected, OSError)
                self.closed = True
                return
            if message["type"] == "websocket.close":
                return
            self.buffered -= size
            if self.paused and self.buffered <= self.high // 4:
                self.paused = False
                self.listener.resume_writing()
