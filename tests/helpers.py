"""Shared test helpers: scaled timeouts, bounded waits, and a disconnect recorder.

Every wait in the suite goes through :func:`scaled` so that a slow machine can stretch them all with
``TETHER_TESTS_TIMEOUT_FACTOR`` (websockets does the same with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_FACTOR = float(os.environ.get("TETHER_TESTS_TIMEOUT_FACTOR", "1") or "1")


TEXT_BODY = {"Content-Type": "text/plain;charset=UTF-8"}
"""Headers of a raw Engine.IO polling POST, as engine.io-client sends it. aiohttp's own Content-Type for a
bytes body, ``application/octet-stream``, is refused by engine.io and Tether alike (docs/guide.md, "Polling
request bodies")."""


def scaled(seconds: float) -> float:
    """``seconds`` stretched by ``TETHER_TESTS_TIMEOUT_FACTOR``."""
    return seconds * TIMEOUT_FACTOR


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail the test after ``scaled(timeout)`` seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):g}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_until_async(
    ask: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 5.0, every: float = 0.05
) -> None:
    """Await ``ask()`` every ``every`` seconds until it answers ``expected`` (a question another process
    answers: a call to a server, a count a peer reports); fail the test after ``scaled(timeout)`` seconds
    with the last answer."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        answer = await ask()
        if answer == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {scaled(timeout):g}s: last answer {answer!r}, not {expected!r}"
            )
        await asyncio.sleep(every)


async def within(awaitable: Any, timeout: float = 5.0) -> Any:
    """Await ``awaitable`` for at most ``scaled(timeout)`` seconds."""
    return await asyncio.wait_for(awaitable, scaled(timeout))


@dataclass
class Recorder:
    """What the test app saw: connects and disconnect reasons."""

    connects: list[tuple[str, str, Any]] = field(default_factory=list)
    """(namespace, sid, auth)"""
    disconnects: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, sid, reason)"""
    ack_failures: list[str] = field(default_factory=list)
    """Names of the exceptions ``ask`` got while awaiting the client's ack."""

    def reasons(self, sid: str | None = None) -> list[str]:
        return [reason for _ns, s, reason in self.disconnects if sid is None or s == sid]

    async def wait_disconnect(self, sid: str, timeout: float = 5.0) -> str:
        """The reason ``sid`` was disconnected with, waiting for it if need be."""
        await wait_until(lambda: bool(self.reasons(sid)), timeout, f"disconnect of {sid}")
        return self.reasons(sid)[0]


class CutProxy:
    """A TCP proxy on 127.0.0.1:0 whose connections can be cut at once, as a tunnel or a Wi-Fi hand-over cuts
    them: :meth:`cut` aborts both sides of every open connection (bytes in flight are lost) and new
    connections go on being forwarded, to ``target`` or to the port given to :meth:`retarget`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0
        self.held = False
        """While True, new connections are aborted at once (the network is still down)."""
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CutProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def retarget(self, port: int) -> None:
        """Send new connections to ``port`` (another worker or node) from now on."""
        self.target = (self.target[0], port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.held:
            writer.transport.abort()
            return
        try:
            # A small receive buffer towards the server: when the proxy stops reading (stall), the server's
            # own buffer fills after kilobytes, not after the megabytes loopback autotuning would allow.
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            up.setblocking(False)
            await asyncio.get_running_loop().sock_connect(up, self.target)
            up_reader, up_writer = await asyncio.open_connection(sock=up)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        loop = asyncio.get_running_loop()
        for task in (
            loop.create_task(self._pipe(reader, up_writer, pair)),
            loop.create_task(self._pipe(up_reader, writer, pair, downstream=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        downstream: bool = False,
    ) -> None:
        try:
            while True:
                if downstream:
                    await self._flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._pairs.discard(pair)

    def stall(self) -> None:
        """Stop reading what the server sends (a client that stopped reading: a slow consumer)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> int:
        """Abort every open connection on both sides; returns how many were open."""
        pairs, self._pairs = self._pairs, set()
        for down, up in pairs:
            down.transport.abort()
            up.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        self.resume()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
