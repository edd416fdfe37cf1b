"""Helpers of the hardening suite: a server on port 0, raw Engine.IO clients, bounded waits.

The clients here speak the wire protocol by hand (Engine.IO v4 over the ``websockets`` package, polling
over aiohttp, bare TCP over asyncio streams) because abuse needs control a well-behaved library would not
give: stop reading, send half a request, answer no pings. Every wait is bounded and scales with
``TETHER_TESTS_TIMEOUT_FACTOR``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection, connect

# One definition of the timeout scaling for the whole suite.
from tests.helpers import TEXT_BODY, TIMEOUT_FACTOR, scaled, wait_until  # noqa: F401
from tether import Config, Router, Server, run_server


def make_config(**sections: dict[str, Any]) -> Config:
    """Defaults (no TETHER_* from the environment) on 127.0.0.1:0, with ``sections`` overriding."""
    overrides: dict[str, dict[str, Any]] = {"server": {"host": "127.0.0.1", "port": 0}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return Config.load(env={}, overrides=overrides)


def echo_router() -> Router:
    """``echo`` acks its arguments back; ``shout`` broadcasts them to everyone as ``shout``."""
    router = Router()

    @router.on("echo")
    def echo(sock: Any, *args: Any) -> tuple[Any, ...]:
        return args

    @router.on("shout")
    def shout(sock: Any, *args: Any) -> None:
        sock.server.emit("shout", *args)

    return router


@contextlib.asynccontextmanager
async def serve(router: Router | None = None, **sections: dict[str, Any]) -> AsyncIterator[Server]:
    """A running server for the body of the ``async with``; shut down afterwards."""
    server = await run_server(make_config(**sections), router if router is not None else echo_router())
    try:
        yield server
    finally:
        await server.shutdown(timeout=scaled(2))


def ws_url(server: Server, query: str = "EIO=4&transport=websocket") -> str:
    scheme = "wss" if server.ssl_context else "ws"
    return f"{scheme}://127.0.0.1:{server.port}/socket.io/?{query}"


def poll_url(server: Server, query: str = "") -> str:
    scheme = "https" if server.ssl_context else "http"
    return f"{scheme}://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=polling{query}"


class EioClient:
    """A Socket.IO client over a raw Engine.IO WebSocket, written by hand.

    A background reader answers pings (unless ``answer_pings`` is False), resolves acks, and keeps
    every other packet in ``received`` so that tests can look at what the server sent.
    """

    def __init__(self, ws: ClientConnection, answer_pings: bool = True, keep: bool = True) -> None:
        self.ws = ws
        self.answer_pings = answer_pings
        self.keep = keep
        """False: only count events by name (a client that receives megabytes must not hold them)."""
        self.counts: collections.Counter[str] = collections.Counter()
        self.sid = ""
        self.received: list[str | bytes] = []
        self.events: list[tuple[str, list[Any]]] = []
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_seq = 0
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.new_message = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        server: Server,
        *,
        namespace: str = "/",
        auth: Any = None,
        answer_pings: bool = True,
        keep: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        origin: str | None = None,
        **connect_kwargs: Any,
    ) -> EioClient:
        ws = await asyncio.wait_for(
            connect(
                ws_url(server),
                max_size=None,
                ping_interval=None,
                ssl=ssl_context,
                origin=origin,  # type: ignore[arg-type]
                compression=None,
                **connect_kwargs,
            ),
            scaled(5),
        )
        client = cls(ws, answer_pings, keep)
        opened = await asyncio.wait_for(ws.recv(), scaled(5))
        assert isinstance(opened, str) and opened.startswith("0"), opened
        client.sid = orjson.loads(opened[1:])["sid"]
        prefix = "40" if namespace == "/" else f"40{namespace},"
        await ws.send(prefix + (orjson.dumps(auth).decode() if auth else ""))
        reply = await asyncio.wait_for(ws.recv(), scaled(5))
        assert isinstance(reply, str) and reply[:2] in ("40", "44"), reply
        client.connect_reply = reply
        client._reader = asyncio.get_running_loop().create_task(client._read())
        return client

    connect_reply: str = ""
    on_event: Callable[[str, list[Any]], None] | None = None

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message == "2":
                    if self.answer_pings:
                        await self.ws.send("3")
                    continue
                if isinstance(message, str) and message.startswith("43"):
                    body = message[2:]
                    if body.startswith("/"):
                        body = body.partition(",")[2]
                    i = 0
                    while i < len(body) and body[i].isdigit():
                        i += 1
                    fut = self._acks.pop(int(body[:i]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(orjson.loads(body[i:]))
                    continue
                if isinstance(message, str) and message.startswith("42"):
                    data = orjson.loads(message[2:])
                    self.counts[data[0]] += 1
                    if self.on_event is not None:
                        self.on_event(data[0], data[1:])
                    if not self.keep:
                        continue
                    self.events.append((data[0], data[1:]))
                self.received.append(message)
                self.new_message.set()
        except Exception:  # the connection ended; `closed` is what tests look at
            pass
        finally:
            self.closed.set()
            for fut in self._acks.values():
                if not fut.done():
                    fut.cancel()

    async def emit(self, event: str, *args: Any) -> None:
        await self.ws.send("42" + orjson.dumps([event, *args]).decode())

    async def call(self, event: str, *args: Any, timeout: float = 5.0, namespace: str = "/") -> Any:
        """Emit with an ack id and return the ack's arguments."""
        self._ack_seq += 1
        ack_id = self._ack_seq
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        prefix = "42" if namespace == "/" else f"42{namespace},"
        await self.ws.send(f"{prefix}{ack_id}" + orjson.dumps([event, *args]).decode())
        return await asyncio.wait_for(fut, scaled(timeout))

    def events_named(self, name: str) -> list[list[Any]]:
        return [args for ev, args in self.events if ev == name]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), scaled(2))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


async def echo_latencies(client: EioClient, count: int, pause: float = 0.0) -> list[float]:
    """Round trips of ``count`` echo calls in seconds, one after another."""
    out = []
    for i in range(count):
        t0 = time.perf_counter()
        result = await client.call("echo", i)
        out.append(time.perf_counter() - t0)
        assert result == [i], result
        if pause:
            await asyncio.sleep(pause)
    return out


def p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return max(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


class PollingClient:
    """An Engine.IO long-polling session over aiohttp."""

    def __init__(self, session: aiohttp.ClientSession, server: Server, sid: str) -> None:
        self.session = session
        self.server = server
        self.sid = sid

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, server: Server, connect_namespace: bool = True
    ) -> PollingClient:
        async with session.get(poll_url(server), timeout=aiohttp.ClientTimeout(total=scaled(5))) as r:
            assert r.status == 200, (r.status, await r.text())
            body = await r.text()
        assert body.startswith("0"), body
        client = cls(session, server, orjson.loads(body[1:])["sid"])
        if connect_namespace:
            assert await client.post(b"40") == 200
            first = await client.get_until("40")
            assert first.split("\x1e")[-1].startswith("40"), first
        return client

    async def post(self, body: bytes) -> int:
        url = poll_url(self.server, f"&sid={self.sid}")
        async with self.session.post(
            url, data=body, headers=TEXT_BODY, timeout=aiohttp.ClientTimeout(total=scaled(5))
        ) as r:
            await r.read()
            return r.status

    async def get_until(self, text: str) -> str:
        """GET until a packet containing ``text`` arrives, answering pings meanwhile; all packets read.

        A GET may bring the server's ping before what the test waits for (the ping is due ``ping_interval``
        after the handshake, which a loaded machine can reach in the middle of a setup); unanswered, that
        ping would also end the session ``ping_timeout`` later.
        """
        packets: list[str] = []
        deadline = time.monotonic() + scaled(5)
        while not any(text in p for p in packets):
            assert time.monotonic() < deadline, f"no packet with {text!r} in {packets}"
            got = (await self.get()).split("\x1e")
            packets += got
            if "2" in got:
                assert await self.post(b"3") == 200
        return "\x1e".join(packets)

    async def get(self, timeout: float = 5.0) -> str:
        async with self.session.get(
            poll_url(self.server, f"&sid={self.sid}"), timeout=aiohttp.ClientTimeout(total=scaled(timeout))
        ) as r:
            text = await r.text()
            assert r.status == 200, (r.status, text)
            return text


async def raw_tcp(
    server: Server, source: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A plain TCP connection to the server from ``source`` (any 127.0.0.x works on Linux loopback)."""
    return await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1",
            server.port,
            local_addr=(source, 0),
            ssl=ssl_context,
            server_hostname="localhost" if ssl_context else None,
        ),
        scaled(5),
    )


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it stays open ``timeout``."""
    chunks = []
    async with asyncio.timeout(scaled(timeout)):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def upgrade_request(path: str = "/socket.io/?EIO=4&transport=websocket", extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def ws_frame(payload: bytes, opcode: int = 0x1, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    """One client-to-server WebSocket frame (masked, as RFC 6455 §5.3 requires of clients)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class StalledClient:
    """A blocking TCP socket with a tiny receive buffer that does the WebSocket handshake, connects to
    ``/`` and then never reads again: the slow consumer of the tests."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, server: Server, rcvbuf: int = 1024) -> StalledClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before connect so that the window the kernel advertises is small from the first segment.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), scaled(5))
        await loop.sock_sendall(sock, upgrade_request())
        data = b""
        async with asyncio.timeout(scaled(5)):
            while b'"maxPayload"' not in data:
                chunk = await loop.sock_recv(sock, 4096)
                assert chunk, data
                data += chunk
        assert data.startswith(b"HTTP/1.1 101"), data
        await loop.sock_sendall(sock, ws_frame(b"40"))
        return cls(sock)

    def close(self) -> None:
        self.sock.close()
