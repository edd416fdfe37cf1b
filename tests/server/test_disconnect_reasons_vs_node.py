"""The reason a ``disconnect`` handler gets, compared with node socket.io 4.8 client action by client action.

Issue 10.

Each row of the table in docs/guide.md ("Disconnect reasons") is one client action, done with raw WebSocket
frames or raw long-polling requests, the same bytes against node (tests/js/reference_server.mjs: ping
interval 300 ms, ping timeout 200 ms, maxHttpBufferSize 1e6, connect timeout 1 s) and against Tether
configured alike (``max_payload`` is 1e6 by default). Both run side by side; the test asserts the reason
each one's ``disconnect`` handler got. Where Tether differs on purpose, the row says so and both answers are
asserted: a change on either side fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.hardening.support import upgrade_request, ws_frame
from tests.helpers import TEXT_BODY, scaled, wait_until
from tests.redis_fixtures import JS_DIR, js_modules_ready, node_bin
from tether import Handler, Router, Socket, run_server

from ..conftest import make_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_PAYLOAD = 1_000_000
"""node's maxHttpBufferSize in reference_server.mjs, Tether's default ``[websocket] max_payload``."""


# -- the two servers --------------------------------------------------------------------------------------


@dataclass
class Target:
    """One server under test: where it listens and what its app saw, by Engine.IO session id."""

    name: str
    port: int
    disconnects: list[tuple[str, str]] = field(default_factory=list)
    """(Engine.IO sid, reason the ``disconnect`` handler got)"""
    closes: list[tuple[str, str]] = field(default_factory=list)
    """(Engine.IO sid, reason the Engine.IO session ended with)"""
    stop: Callable[[], Awaitable[None]] | None = None
    stopped: bool = False
    """Shut the server down (node: SIGTERM, whose handler calls ``io.close()``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reasons(self, eio: str) -> list[str]:
        return [reason for sid, reason in self.disconnects if sid == eio]

    def close_reasons(self, eio: str) -> list[str]:
        return [reason for sid, reason in self.closes if sid == eio]

    async def reason(self, eio: str, timeout: float = 5.0) -> str:
        """The one reason the ``disconnect`` handler of session ``eio`` got, waiting for it."""
        await wait_until(lambda: bool(self.reasons(eio)), timeout, f"{self.name}: disconnect of {eio}")
        return self.reasons(eio)[0]

    async def close_reason(self, eio: str, timeout: float = 5.0) -> str:
        await wait_until(lambda: bool(self.close_reasons(eio)), timeout, f"{self.name}: close of {eio}")
        return self.close_reasons(eio)[0]


@contextlib.contextmanager
def node_reference() -> Iterator[Target]:
    """node tests/js/reference_server.mjs, its stdout read by a thread into a :class:`Target`."""
    js_modules_ready("socket.io")
    proc = subprocess.Popen(
        [node_bin(), str(JS_DIR / "reference_server.mjs")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=JS_DIR,
    )
    assert proc.stdout is not None
    port: list[int] = []
    lines: list[str] = []
    ready = threading.Event()
    target = Target("node", 0)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a warning or a stack trace: kept in ``lines`` for the failure message
            if "listening" in event:
                port.append(int(event["listening"]))
                ready.set()
            elif "disconnect" in event:
                target.disconnects.append((event["eio"], event["disconnect"]))
            elif "close" in event:
                target.closes.append((event["eio"], event["close"]))
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ready.wait(scaled(20))
        if not port:
            pytest.fail("node tests/js/reference_server.mjs did not start:\n" + "".join(lines))
        target.port = port[0]

        async def stop() -> None:
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.to_thread(proc.wait, scaled(10))
            await asyncio.to_thread(reader.join, scaled(5))

        target.stop = stop
        yield target
        if target.stopped:
            return
        assert proc.poll() is None, "node exited during the test:\n" + "".join(lines)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(scaled(5))


class Recording(Handler):
    def __init__(self, target: Target) -> None:
        self.target = target

    def on_close(self, client: Any, reason: str) -> None:
        self.target.closes.append((client.sid, reason))


def reference_router(target: Target) -> Router:
    """reference_server.mjs's app in Tether: an echo, ``bye`` disconnects, every reason is recorded."""
    router = Router()

    @router.on("echo")
    def echo(sock: Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @router.on("bye")
    def bye(sock: Socket, close: Any = False) -> None:
        sock.disconnect(close=close is True)

    def disconnect(sock: Socket, reason: str) -> None:
        target.disconnects.append((sock.client.sid, reason))

    for namespace in ("/", "/custom"):  # as reference_server.mjs
        router.on("disconnect", disconnect, namespace=namespace)
    return router


@contextlib.asynccontextmanager
async def tether_reference() -> AsyncIterator[Target]:
    target = Target("tether", 0)
    config = make_config(
        websocket={"ping_interval": 0.3, "ping_timeout": 0.2, "connect_timeout": 1.0},
        # Tether's own flood limit (node has none), low so that its row floods with 400 events, not 10 000.
        limits={"event_rate": 100.0, "event_burst": 100},
    )
    assert config.websocket.max_payload == MAX_PAYLOAD
    assert config.limits.max_name_length == 256 and config.limits.rate_disconnect_after == 50
    server = await run_server(config, reference_router(target), handler=Recording(target))
    target.port = server.port
    target.stop = lambda: server.shutdown(timeout=scaled(2))
    try:
        yield target
    finally:
        if not target.stopped:
            await server.shutdown(timeout=scaled(2))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tether() -> AsyncIterator[Target]:
    async with tether_reference() as target:
        yield target


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- raw clients ------------------------------------------------------------------------------------------


def ws_url(t: Target) -> str:
    return f"ws://127.0.0.1:{t.port}/socket.io/?EIO=4&transport=websocket"


def poll_url(t: Target, sid: str = "") -> str:
    return f"{t.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")


async def recv_non_ping(ws: ClientConnection) -> str | bytes:
    """The next message that is not a ping (pings are answered)."""
    while True:
        message = await asyncio.wait_for(ws.recv(), scaled(5))
        if message == "2":
            await ws.send("3")
            continue
        return message


@contextlib.asynccontextmanager
async def ws_session(t: Target, join: bool = True) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A raw Engine.IO WebSocket, the main namespace joined with ``join``: (connection, Engine.IO sid)."""
    ws = await asyncio.wait_for(
        connect(ws_url(t), ping_interval=None, compression=None, max_size=None), scaled(5)
    )
    try:
        opened = await asyncio.wait_for(ws.recv(), scaled(5))
        assert isinstance(opened, str) and opened.startswith("0"), opened
        sid = orjson.loads(opened[1:])["sid"]
        if join:
            await ws.send("40")
            reply = await recv_non_ping(ws)
            assert isinstance(reply, str) and reply.startswith("40{"), reply
        yield ws, sid
    finally:
        ws.transport.abort()


class Poller:
    """A raw long-polling client."""

    def __init__(self, http: aiohttp.ClientSession, t: Target) -> None:
        self.http = http
        self.t = t
        self.sid = ""

    async def open(self, join: bool = True) -> str:
        status, body = await self.get()
        assert status == 200 and body.startswith("0"), body
        self.sid = orjson.loads(body[1:])["sid"]
        if join:
            assert await self.post("40") == (200, "ok")
            status, body = await self.get()
            assert body.startswith("40{"), body
        return self.sid

    async def get(self) -> tuple[int, str]:
        try:
            async with self.http.get(
                poll_url(self.t, self.sid), timeout=aiohttp.ClientTimeout(total=scaled(5))
            ) as r:
                return r.status, await r.text()
        except aiohttp.ClientError:
            return 0, ""

    async def post(self, body: str | bytes) -> tuple[int, str]:
        data = body.encode() if isinstance(body, str) else body
        try:
            async with self.http.post(
                poll_url(self.t, self.sid),
                data=data,
                headers=TEXT_BODY,
                timeout=aiohttp.ClientTimeout(total=scaled(5)),
            ) as r:
                return r.status, await r.text()
        except aiohttp.ClientError:
            return 0, ""  # the server cut the connection (node does, for a body over maxHttpBufferSize)


async def linger_ws(t: Target, ws: ClientConnection, sid: str) -> None:
    """Go on as a live client does (pings answered) until the server ended the session: node may end it
    only after its write buffer drained, and a client that went silent would be a ping timeout first."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(scaled(5)):
            while not t.reasons(sid):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(recv_non_ping(ws), 0.05)


async def linger_polling(t: Target, poller: Poller) -> None:
    """Go on polling as a live client does until the server ended the session: node delivers a close to
    the next GET (and ends the session then), so a client that stopped polling would be a ping timeout."""
    async with asyncio.timeout(scaled(5)):
        while not t.reasons(poller.sid):
            status, body = await poller.get()
            if status != 200:
                break
            if "\x1e2" in f"\x1e{body}":
                await poller.post("3")


def raw_get(t: Target, sid: str) -> bytes:
    return f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed client or a middlebox does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def raw_ws(t: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A WebSocket over a plain TCP stream, the main namespace joined: for frames websockets will not send."""
    reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
    writer.write(upgrade_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 101"), head
    first = await asyncio.wait_for(reader.readexactly(2), scaled(5))
    assert first[0] == 0x81, first
    size = first[1] & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    opened = await reader.readexactly(size)
    sid = orjson.loads(opened[1:])["sid"]
    writer.write(ws_frame(b"40"))
    return reader, writer, sid


def big_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """:func:`ws_frame` for a big payload: masked with the key 0 (RFC 6455 §5.3 allows any key), so that
    masking half a megabyte in Python does not block the loop (and both servers' heartbeats) for 100 ms."""
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | 127]) + len(payload).to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


async def raw_linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the server's frames, answering pings, until it closes the connection: a live client, so that a
    slow read of a big message is not a ping timeout."""
    async with asyncio.timeout(scaled(5)):
        while head := await reader.read(2):
            if len(head) < 2:
                head += await reader.readexactly(1)
            size = head[1] & 0x7F
            if size == 126:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(size)
            if head[0] & 0x0F == 0x1 and payload == b"2" and not writer.is_closing():
                writer.write(ws_frame(b"3"))


# -- the rows of the table, one client action each ----------------------------------------------------------
# Each returns the Engine.IO session id it ended (or will end); the test waits for the reason.

Action = Callable[[Target, aiohttp.ClientSession], Awaitable[str | None]]


async def ws_namespace_disconnect(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("41")
        await linger_ws(t, ws, sid)
    return sid


async def polling_namespace_disconnect(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    assert await poller.post("41") == (200, "ok")
    await linger_polling(t, poller)
    assert await poller.post("1") == (200, "ok")
    return sid


async def polling_close_packet(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    assert await poller.post("1") == (200, "ok")
    await linger_polling(t, poller)
    return sid


async def ws_close_packet_then_silence(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("1")
        await t.reason(sid)  # neither answering pings nor closing
    return sid


async def ws_close_frame_with_code(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await asyncio.wait_for(ws.close(1000), scaled(5))
    return sid


async def ws_close_frame_without_code(t: Target, http: aiohttp.ClientSession) -> str:
    reader, writer, sid = await raw_ws(t)
    try:
        await asyncio.sleep(scaled(0.05))  # the CONNECT read before the close
        writer.write(ws_frame(b"", opcode=0x8))
        await raw_linger(reader, writer)
    finally:
        writer.transport.abort()
    return sid


async def ws_tcp_reset(t: Target, http: aiohttp.ClientSession) -> str:
    _reader, writer, sid = await raw_ws(t)
    await asyncio.sleep(scaled(0.05))
    reset(writer)
    return sid


async def polling_held_get_dropped(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    _reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
    writer.write(raw_get(t, sid))
    await asyncio.sleep(scaled(0.05))  # held: nothing to send before the next ping
    writer.close()
    return sid


async def polling_two_gets(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    first = asyncio.ensure_future(poller.get())
    await asyncio.sleep(scaled(0.05))
    await poller.get()
    await asyncio.wait_for(first, scaled(5))
    return sid


async def polling_body_over_max(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    body = '42["echo","' + "x" * MAX_PAYLOAD + '"]'
    await poller.post(body)
    await linger_polling(t, poller)
    return sid


async def ws_message_over_max(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send('42["echo","' + "x" * MAX_PAYLOAD + '"]')
        await linger_ws(t, ws, sid)
    return sid


async def ws_ping_timeout(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (_ws, sid):
        await t.reason(sid)  # pings unanswered
    return sid


async def polling_ping_timeout(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    return await poller.open()  # and no GET after: the ping is never read


async def ws_unknown_engineio_type(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("9")
        await linger_ws(t, ws, sid)
    return sid


async def polling_unknown_engineio_type(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    await poller.post("9")
    await linger_polling(t, poller)
    return sid


async def ws_invalid_utf8(t: Target, http: aiohttp.ClientSession) -> str:
    reader, writer, sid = await raw_ws(t)
    try:
        await asyncio.sleep(scaled(0.05))
        writer.write(ws_frame(b'42["echo","\xff"]'))
        await raw_linger(reader, writer)
    finally:
        writer.transport.abort()
    return sid


async def ws_continuation_without_message(t: Target, http: aiohttp.ClientSession) -> str:
    reader, writer, sid = await raw_ws(t)
    try:
        await asyncio.sleep(scaled(0.05))
        writer.write(ws_frame(b"2", opcode=0x0))  # RFC 6455 §5.4: a continuation needs a first frame
        await raw_linger(reader, writer)
    finally:
        writer.transport.abort()
    return sid


async def ws_bad_json(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send('42["echo"')
        await linger_ws(t, ws, sid)
    return sid


async def polling_bad_json(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    await poller.post('42["echo"')
    await linger_polling(t, poller)
    return sid


async def ws_bad_ack_id(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("43x[]")
        await linger_ws(t, ws, sid)
    return sid


async def ws_reserved_event_name(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send('42["connect"]')
        await linger_ws(t, ws, sid)
    return sid


async def ws_connect_timeout(t: Target) -> tuple[str, float]:
    """(Engine.IO sid, seconds the session lasted): pings answered, no CONNECT."""
    started = time.monotonic()
    async with ws_session(t, join=False) as (ws, sid):
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(scaled(5)):
                while not t.close_reasons(sid):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(recv_non_ping(ws), 0.05)
    return sid, time.monotonic() - started


async def server_disconnects_and_closes(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send('42["bye",true]')
        await linger_ws(t, ws, sid)
    return sid


async def ws_two_namespaces_closed(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("40/custom,")
        while not str(await recv_non_ping(ws)).startswith("40/custom,{"):
            pass
        await asyncio.wait_for(ws.close(1000), scaled(5))
    await wait_until(lambda: len(t.reasons(sid)) == 2, 5, f"{t.name}: both sockets of {sid} gone")
    return sid


async def ws_one_of_two_namespaces_left(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send("40/custom,")
        while not str(await recv_non_ping(ws)).startswith("40/custom,{"):
            pass
        await ws.send("41/custom,")
        await linger_ws(t, ws, sid)
        await ws_echo(ws, 1, "/ still there")
        await asyncio.wait_for(ws.close(1000), scaled(5))
    await wait_until(lambda: len(t.reasons(sid)) == 2, 5, f"{t.name}: the socket on / gone too")
    return sid


async def polling_octet_stream_body(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    async with http.post(
        poll_url(t, sid),
        data=b'42["echo","x"]',
        headers={"Content-Type": "application/octet-stream"},
        timeout=aiohttp.ClientTimeout(total=scaled(5)),
    ) as r:
        await r.read()
    # engine.io's "invalid content", Tether's too (test_polling_content_type_vs_node.py)
    assert r.status == 400
    await linger_polling(t, poller)
    return sid


async def ws_fragments_over_max(t: Target, http: aiohttp.ClientSession) -> str:
    reader, writer, sid = await raw_ws(t)
    try:
        await asyncio.sleep(scaled(0.05))
        half = MAX_PAYLOAD // 2
        writer.write(big_frame(b'42["echo","' + b"x" * half, fin=False))
        writer.write(big_frame(b"x" * half + b'"]', opcode=0x0))  # together past max_payload
        await raw_linger(reader, writer)
    finally:
        writer.transport.abort()
    return sid


async def server_disconnects(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send('42["bye"]')
        while (message := await recv_non_ping(ws)) != "41":
            assert isinstance(message, str) and message.startswith("42"), message  # node's app emits "auth"
        await t.reason(sid)
    return sid


@dataclass(frozen=True)
class Row:
    action: Action
    node: str | None
    tether: str | None = None
    """Tether's reason where it differs from node's on purpose (the table says why); None: node's."""

    after: tuple[str, ...] = ()
    """Reasons of the session's other sockets, which the action ends after (both servers alike)."""

    @property
    def expected_tether(self) -> str | None:
        return self.tether if self.tether is not None else self.node


ROWS = {
    "websocket: DISCONNECT 41": Row(ws_namespace_disconnect, "client namespace disconnect"),
    "polling: DISCONNECT 41": Row(polling_namespace_disconnect, "client namespace disconnect"),
    "polling: close packet 1": Row(polling_close_packet, "transport close"),
    "websocket: close packet 1": Row(ws_close_packet_then_silence, "ping timeout", "transport close"),
    "websocket: close frame 1000": Row(ws_close_frame_with_code, "transport close"),
    "websocket: close frame without a code": Row(ws_close_frame_without_code, "transport close"),
    "websocket: TCP reset": Row(ws_tcp_reset, "transport close"),
    "polling: held GET's TCP connection dropped": Row(polling_held_get_dropped, "transport error"),
    "polling: two GETs at once": Row(polling_two_gets, "transport error"),
    "polling: body over max_payload": Row(polling_body_over_max, "transport error"),
    "websocket: message over max_payload": Row(ws_message_over_max, "transport error"),
    "websocket: no pong": Row(ws_ping_timeout, "ping timeout"),
    "polling: no GET": Row(polling_ping_timeout, "ping timeout"),
    "websocket: unknown Engine.IO packet type": Row(ws_unknown_engineio_type, "parse error"),
    "polling: unknown Engine.IO packet type": Row(polling_unknown_engineio_type, "parse error"),
    "websocket: text frame not UTF-8": Row(ws_invalid_utf8, "transport error"),
    "websocket: fragmented message over max_payload": Row(ws_fragments_over_max, "transport error"),
    "websocket: continuation frame without a first frame": Row(
        ws_continuation_without_message, "transport error"
    ),
    "websocket: bad JSON": Row(ws_bad_json, "forced close"),
    "polling: bad JSON": Row(polling_bad_json, "forced close"),
    "websocket: bad ack id": Row(ws_bad_ack_id, "forced close"),
    "websocket: reserved event name": Row(ws_reserved_event_name, "forced close"),
    "websocket: close frame, two namespaces joined": Row(
        ws_two_namespaces_closed, "transport close", after=("transport close",)
    ),
    "websocket: DISCONNECT of one of two namespaces": Row(
        ws_one_of_two_namespaces_left, "client namespace disconnect", after=("transport close",)
    ),
    "polling: POST of Content-Type application/octet-stream": Row(
        polling_octet_stream_body, "transport error"
    ),
    "server: socket.disconnect()": Row(server_disconnects, "server namespace disconnect"),
    "server: socket.disconnect(true)": Row(server_disconnects_and_closes, "server namespace disconnect"),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
async def test_disconnect_reason_is_nodes(
    row: Row, node: Target, tether: Target, http: aiohttp.ClientSession
) -> None:
    node_sid, tether_sid = await asyncio.gather(row.action(node, http), row.action(tether, http))
    assert node_sid is not None and tether_sid is not None
    got = await asyncio.gather(node.reason(node_sid), tether.reason(tether_sid))
    assert got == [row.node, row.expected_tether]
    # Exactly one reason per socket, as node's listener gets exactly one call.
    await asyncio.sleep(scaled(0.05))
    assert node.reasons(node_sid) == [row.node, *row.after]
    assert tether.reasons(tether_sid) == [row.expected_tether, *row.after]


# -- at the limits, and Tether's own limits: node keeps the client -------------------------------------------


async def ws_echo(ws: ClientConnection, ack: int, arg: str) -> None:
    """An echo with ack id ``ack`` answered (the session is alive)."""
    await ws.send(f'42{ack}["echo",{orjson.dumps(arg).decode()}]')
    while True:
        reply = await recv_non_ping(ws)
        assert isinstance(reply, str)
        if reply.startswith(f"43{ack}["):
            assert orjson.loads(reply[2 + len(str(ack)) :]) == [arg]
            return
        assert reply.startswith("42"), reply  # node's app emits "auth" on connect


async def ws_message_at_max(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        head = '421["echo","'
        arg = "x" * (MAX_PAYLOAD - len(head) - 2)
        assert len(f'{head}{arg}"]') == MAX_PAYLOAD
        await ws_echo(ws, 1, arg)
        await ws_echo(ws, 2, "still there")
    return sid


async def polling_body_at_max(t: Target, http: aiohttp.ClientSession) -> str:
    poller = Poller(http, t)
    sid = await poller.open()
    head = '42["echo","'
    body = head + "x" * (MAX_PAYLOAD - len(head) - 2) + '"]'
    assert len(body) == MAX_PAYLOAD
    assert await poller.post(body) == (200, "ok")
    assert await poller.post('421["echo","still there"]') == (200, "ok")
    async with asyncio.timeout(scaled(5)):
        while '431["still there"]' not in (got := await poller.get())[1]:
            assert got[0] == 200, got
            if "\x1e2" in f"\x1e{got[1]}":
                await poller.post("3")
    assert await poller.post("1") == (200, "ok")
    return sid


async def ws_name_over_max_name_length(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        await ws.send(f'42["{"n" * 257}"]')  # [limits] max_name_length = 256
        if t.name == "tether":
            await linger_ws(t, ws, sid)
        else:
            await ws_echo(ws, 1, "still there")
    return sid


async def ws_flood_over_event_rate(t: Target, http: aiohttp.ClientSession) -> str:
    async with ws_session(t) as (ws, sid):
        # Tether's module server: event_burst 100, event_rate 100/s, closed after 50 refusals. 400 at once.
        with contextlib.suppress(ConnectionClosed):
            for _ in range(400):
                await ws.send('42["flood"]')
        if t.name == "tether":
            await linger_ws(t, ws, sid)
        else:
            await ws_echo(ws, 1, "still there")
    return sid


KEPT = {
    "websocket: message of exactly max_payload": (ws_message_at_max, None),
    "polling: body of exactly max_payload": (polling_body_at_max, None),
    "websocket: name over max_name_length (Tether's limit)": (ws_name_over_max_name_length, "parse error"),
    "websocket: flood over event_rate (Tether's limit)": (ws_flood_over_event_rate, "rate limit"),
}


@pytest.mark.parametrize("row", list(KEPT.values()), ids=list(KEPT))
async def test_node_keeps_the_client(
    row: tuple[Action, str | None], node: Target, tether: Target, http: aiohttp.ClientSession
) -> None:
    """node has no disconnect for these (its socket answers an echo after them); Tether has one where the
    row is a limit of its own, and the same none at the limit."""
    action, tether_reason = row
    node_sid, tether_sid = await asyncio.gather(action(node, http), action(tether, http))
    assert node_sid is not None and tether_sid is not None
    if tether_reason is not None:
        assert await tether.reason(tether_sid) == tether_reason
    await asyncio.sleep(scaled(0.05))
    # Closed by the test's own client at the end: node's socket lived until then.
    assert node.reasons(node_sid) in ([], ["transport close"]), node.reasons(node_sid)
    if tether_reason is not None:
        assert tether.reasons(tether_sid) == [tether_reason]
    else:
        assert tether.reasons(tether_sid) in ([], ["transport close"])


# -- no CONNECT, and the server going away ------------------------------------------------------------------


async def test_connect_timeout_runs_no_disconnect_handler(node: Target, tether: Target) -> None:
    """No CONNECT within connect_timeout: both end the Engine.IO session and no ``disconnect`` handler
    runs (no socket was made). The session's own close reason differs on purpose: node's Client closes
    it as "forced close"; Tether's ``Handler.on_close`` and ``state.disconnects`` say "connect timeout"."""
    (node_sid, node_lasted), (tether_sid, tether_lasted) = await asyncio.gather(
        ws_connect_timeout(node), ws_connect_timeout(tether)
    )
    got = await asyncio.gather(node.close_reason(node_sid), tether.close_reason(tether_sid))
    assert got == ["forced close", "connect timeout"]
    # connect_timeout (1 s), not the ping timeout (0.5 s): the pings were answered.
    assert node_lasted >= 0.95 and tether_lasted >= 0.95
    assert node.reasons(node_sid) == [] and tether.reasons(tether_sid) == []


async def test_server_shutdown_is_server_shutting_down() -> None:
    """A server of each of its own (the module's stay up): ``io.close()`` / :meth:`Server.shutdown`."""
    with node_reference() as node_t:
        async with (
            tether_reference() as tether_t,
            ws_session(node_t) as (_, node_sid),
            ws_session(tether_t) as (_, tether_sid),
        ):
            for t in (node_t, tether_t):
                assert t.stop is not None
                await t.stop()
                t.stopped = True
            got = await asyncio.gather(node_t.reason(node_sid), tether_t.reason(tether_sid))
    assert got == ["server shutting down", "server shutting down"]
