"""The metrics listener: ``[metrics] listen`` (``host:port``), a plain HTTP server for scrapers only.

``tether start``'s master runs it (one listener per instance, whatever the number of workers; the master
already gathers every worker's snapshot), so metrics stay off the public port: a Prometheus on the same host
or a private network scrapes ``http://127.0.0.1:9502/metrics`` while the service port faces the world.

One request per connection (``Connection: close``): ``GET`` or ``HEAD`` of ``[metrics] path`` answers 200,
any other path 404, any other method 405. A request must arrive whole within :data:`REQUEST_TIMEOUT` seconds
and fit in :data:`MAX_REQUEST` bytes (408 / 431 otherwise): a scraper sends a few hundred bytes. Parsing is
httptools' (the same parser as the service port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

import httptools
from prometheus_client import CONTENT_TYPE_LATEST

from .config import parse_listen

__all__ = ["MAX_REQUEST", "REQUEST_TIMEOUT", "start"]

log = logging.getLogger("tether.metrics")

MAX_REQUEST = 8192
"""Bytes of request line, headers and body accepted from a scraper."""
REQUEST_TIMEOUT = 10.0
"""Seconds a scraper has to send its request."""

Render = Callable[[], Awaitable[bytes]]


class _Scrape(asyncio.Protocol):
    def __init__(self, path: str, render: Render) -> None:
        self.path = path
        self.render = render
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.size = 0
        self.answered = False
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT, self._answer, 408, b"")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        self.size += len(data)
        if self.size > MAX_REQUEST:
            self._answer(431, b"")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._answer(400, b"")

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method not in (b"GET", b"HEAD"):
            self._answer(405, b"", {"Allow": "GET, HEAD"})
            return
        if httptools.parse_url(self.url).path.decode("latin-1") != self.path:
            self._answer(404, b"")
            return
        self.task = asyncio.get_running_loop().create_task(self._scrape(method == b"HEAD"))

    async def _scrape(self, head: bool) -> None:
        try:
            body = await self.render()
        except Exception:
            log.exception("! metrics scrape failed")
            self._answer(500, b"")
            return
        self._answer(200, b"" if head else body, {"Content-Type": CONTENT_TYPE_LATEST}, len(body))

    def _answer(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, length: int | None = None
    ) -> None:
        if self.answered or self.transport is None or self.transport.is_closing():
            return
        self.answered = True
        if self.timer is not None:
            self.timer.cancel()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "")
        reason = reason or {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
            status, "Error"
        )
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body) if length is None else length}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        with contextlib.suppress(Exception):
            self.transport.close()


async def start(listen: str, path: str, render: Render) -> asyncio.Server:
    """Serve ``render()``'s bytes at ``path`` on ``listen`` (``host:port``) until the server is closed.

    Raises:
        ValueError: ``listen`` is not ``host:port``.
        OSError: the address is in use or cannot be bound.
    """
    host, port = parse_listen(listen)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Scrape(path, render), host, port, reuse_address=True)
