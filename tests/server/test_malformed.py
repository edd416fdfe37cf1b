"""Malformed input of every kind: each gets a clean close or an HTTP 4xx with a reason, and well-behaved
clients on the same server (python-socketio over WebSocket and over polling) notice nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import ServerFactory
from tests.helpers import TEXT_BODY, Recorder, scaled, wait_until
from tests.server.clients import SioClient
from tether import Server

MAX_PAYLOAD = 4096


class Bystanders:
    """Two well-behaved clients that must keep working whatever the others send."""

    def __init__(self, server: Server, clients: list[SioClient]) -> None:
        self.server = server
        self.clients = clients

    async def still_fine(self) -> None:
        for client in self.clients:
            await client.echo_works()
            assert client.sio.connected
        assert self.server.state.handler_errors == 0  # no abuse reached a handler as an exception


@pytest.fixture
async def server(server_factory: ServerFactory) -> Server:
    return await server_factory(websocket={"max_payload": MAX_PAYLOAD}, limits={"handshake_timeout": 0.5})


@pytest.fixture
async def bystanders(server: Server) -> AsyncIterator[Bystanders]:
    clients = [SioClient(["websocket"]), SioClient(["polling"])]
    try:
        for client in clients:
            await client.connect(server.url)
        yield Bystanders(server, clients)
    finally:
        for client in clients:
            await client.close()


# -- raw Engine.IO WebSocket --------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame, built by hand to send what a WebSocket library refuses to (RFC 6455 §5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def open_eio(server: Server) -> ClientConnection:
    """A raw Engine.IO v4 WebSocket, connected to "/" the way socket.io-client does it."""
    ws = await connect(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        open_timeout=scaled(5),
        max_size=None,
    )
    opened = await asyncio.wait_for(ws.recv(), scaled(5))
    assert isinstance(opened, str) and opened.startswith('0{"sid":')
    await ws.send('40{"token":"secret"}')
    assert str(await asyncio.wait_for(ws.recv(), scaled(5))).startswith('40{"sid":')
    assert str(await asyncio.wait_for(ws.recv(), scaled(5))).startswith('42["welcome"')
    return ws


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), scaled(timeout))
    except ConnectionClosed:
        pass
    assert ws.protocol.close_rcvd is not None, "the server dropped the connection without a close frame"
    return ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason


WS_ABUSE: list[tuple[str, list[str | bytes], int, str]] = [
    ("eio type", ["9"], 1002, "unexpected Engine.IO packet type '9' from client"),
    ("eio empty", [""], 1002, "empty Engine.IO packet"),
    ("eio client ping", ["2"], 1002, "unexpected Engine.IO packet type '2' from client"),
    ("eio upgrade", ["5"], 1002, "unexpected Engine.IO packet type '5' from client"),
    ("eio open", ['0{"sid":"x"}'], 1002, "unexpected Engine.IO packet type '0' from client"),
    ("sio type", ["49"], 1002, "unknown Socket.IO packet type '9'"),
    ("sio empty", ["4"], 1002, "empty Socket.IO packet"),
    ("broken json", ['42["echo",'], 1002, "invalid JSON in Socket.IO packet"),
    ("broken json ns", ['42/chat,1{"echo"'], 1002, "invalid JSON in Socket.IO packet"),
    ("event object", ['42{"echo":1}'], 1002, "EVENT payload must be an array starting with the event name"),
    ("event no name", ["42[1,2]"], 1002, "EVENT payload must be an array starting with the event name"),
    ("ack id too long", ['42123456789012345678["echo"]'], 1002, "ack id too long"),
    ("ack id range", ['439007199254740992["x"]'], 1002, "ack id out of range"),
    ("ack without id", ['43["x"]'], 1002, "ACK without an id"),
    ("ack not array", ['431{"x":1}'], 1002, "ACK payload must be an array"),
    ("connect error", ['44{"message":"x"}'], 1002, "CONNECT_ERROR is sent by servers only"),
    ("connect auth", ['40"token"'], 1002, "CONNECT payload must be an object"),
    ("attachments", ['4565-["up"]'], 1002, "65 attachments exceeds 64"),
    ("attachment count", ['45x-["up"]'], 1002, "binary packet without a valid attachment count"),
    ("binary unannounced", [b"\x00\x01"], 1002, "binary message without a binary packet announcing it"),
    (
        "text instead of attachment",
        ['451-["up",{"_placeholder":true,"num":0}]', '42["echo"]'],
        1002,
        "text packet while binary attachments were expected",
    ),
    (
        "placeholder out of range",
        ['451-["up",{"_placeholder":true,"num":5}]', b"x"],
        1002,
        "placeholder number 5 out of range",
    ),
    ("frame too big", ["4" + "x" * MAX_PAYLOAD], 1009, ""),
    ("binary too big", ['451-["up",{"_placeholder":true,"num":0}]', b"x" * (MAX_PAYLOAD + 1)], 1009, ""),
]


@pytest.mark.parametrize(
    ("frames", "code", "reason"), [w[1:] for w in WS_ABUSE], ids=[w[0] for w in WS_ABUSE]
)
async def test_websocket_abuse(
    server: Server, bystanders: Bystanders, rec: Recorder, frames: list[str | bytes], code: int, reason: str
) -> None:
    ws = await open_eio(server)
    for message in frames:
        await ws.send(message)
    got_code, got_reason = await closed_with(ws)
    assert got_code == code
    assert got_reason.startswith(reason)
    if code == 1002:
        # As node (tests/server/test_disconnect_reasons_vs_node.py): an invalid Engine.IO packet is a
        # "parse error", an invalid Socket.IO packet in a sound one socket.io's "forced close".
        engineio = reason.endswith(" from client") or reason == "empty Engine.IO packet"
        expected = "parse error" if engineio else "forced close"
        assert await rec.wait_disconnect(rec.connects[-1][1]) == expected
    await wait_until(lambda: server.connection_count == 2, what="abuser's session gone")
    assert server.state.protocol_errors == 1
    await bystanders.still_fine()


async def test_invalid_utf8_text_frame(server: Server, bystanders: Bystanders) -> None:
    ws = await open_eio(server)
    await ws.send(b'42["echo","\xff\xfe"]', text=True)
    assert await closed_with(ws) == (1007, "invalid UTF-8 in text frame")
    await bystanders.still_fine()


async def test_invalid_utf8_in_fragmented_text(server: Server, bystanders: Bystanders) -> None:
    ws = await open_eio(server)
    ws.transport.write(frame(0x1, b'42["echo","\xc3', fin=False) + frame(0x0, b'"]'))
    assert await closed_with(ws) == (1007, "invalid UTF-8 in text frame")
    await bystanders.still_fine()


async def test_continuation_without_a_message(server: Server, bystanders: Bystanders) -> None:
    ws = await open_eio(server)
    ws.transport.write(frame(0x0, b"orphan"))
    code, _reason = await closed_with(ws)
    assert code == 1002
    await bystanders.still_fine()


async def test_fragmented_message_over_max_payload(server: Server, bystanders: Bystanders) -> None:
    ws = await open_eio(server)
    half = "x" * (MAX_PAYLOAD // 2 + 10)
    await ws.send(["4" + half, half])  # each fragment is small; the message is not
    code, _reason = await closed_with(ws)
    assert code == 1009
    await bystanders.still_fine()


async def test_fragmented_message_within_limits_works(server: Server) -> None:
    ws = await open_eio(server)
    await ws.send(['421["echo",', '"in two fragments"]'])
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == '42["echo","in two fragments"]'
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == '431["in two fragments"]'
    await ws.close()


async def test_harmless_oddities_are_ignored(server: Server, bystanders: Bystanders) -> None:
    """Not errors: an ack never asked for, an event for a namespace not joined, an unknown event, a noop."""
    ws = await open_eio(server)
    await ws.send('43999["never asked"]')
    await ws.send('42/chat,["echo","not joined"]')
    await ws.send('42["no_such_event",1]')
    await ws.send("6")
    await ws.send("40/nope,")  # wrong namespace: refused, the connection stays
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == ('44/nope,{"message":"Invalid namespace"}')
    await ws.send('421["echo","still here"]')
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == '42["echo","still here"]'
    assert await asyncio.wait_for(ws.recv(), scaled(5)) == '431["still here"]'
    await ws.close()
    assert server.state.protocol_errors == 0
    await bystanders.still_fine()


async def test_events_before_connect_are_ignored_then_connect_timeout(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket={"connect_timeout": 0.5})
    async with connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket") as ws:
        assert str(await asyncio.wait_for(ws.recv(), scaled(5))).startswith("0{")
        await ws.send('421["echo","before connect"]')  # no namespace joined: ignored
        # the client never sends CONNECT: the server gives up on it (Engine.IO close, then the WebSocket)
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "1"
        assert (await closed_with(ws))[0] == 1000
    assert server.state.disconnects == {"connect timeout": 1}


# -- HTTP long-polling -------------------------------------------------------------------------------------


class Polling:
    """Engine.IO long-polling by hand, with aiohttp."""

    def __init__(self, http: aiohttp.ClientSession, server: Server) -> None:
        self.http = http
        self.base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        self.sid = ""

    async def open(self) -> Polling:
        async with self.http.get(self.base) as r:
            assert r.status == 200
            self.sid = orjson.loads((await r.read())[1:])["sid"]
        assert await self.post(b'40{"token":"secret"}') == (200, b"ok")
        body = await self.get()
        assert body.startswith(b'40{"sid":') and b'42["welcome"' in body
        return self

    async def get(self) -> bytes:
        async with self.http.get(f"{self.base}&sid={self.sid}") as r:
            assert r.status == 200, await r.text()
            return await r.read()

    async def post(self, body: bytes) -> tuple[int, Any]:
        async with self.http.post(f"{self.base}&sid={self.sid}", data=body, headers=TEXT_BODY) as r:
            data = await r.read()
            return r.status, orjson.loads(data) if r.content_type == "application/json" else data


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(10))) as session:
        yield session


POLL_ABUSE: list[tuple[str, bytes, int, str]] = [
    ("eio type", b"9", 400, "unknown Engine.IO packet type '9'"),
    ("eio ping", b"2", 400, "unexpected Engine.IO packet PING in polling body"),
    ("empty packet", b'42["a"]\x1e\x1e42["b"]', 400, "empty Engine.IO packet"),
    ("sio type", b"49", 400, "unknown Socket.IO packet type '9'"),
    ("broken json", b'42["echo",', 400, "invalid JSON in Socket.IO packet"),
    ("bad ack id", b'4312345678901234567["x"]', 400, "ack id too long"),
    ("ack without id", b'43["x"]', 400, "ACK without an id"),
    ("bad base64", b"b!!!", 400, "bad base64 in binary polling packet"),
    ("not utf-8", b"42\xff", 400, "polling payload is not valid UTF-8"),
    ("unannounced binary", b"bAAE=", 400, "binary message without a binary packet announcing it"),
    ("too big", b"4" + b"x" * MAX_PAYLOAD, 413, "Payload too large"),
]


@pytest.mark.parametrize(
    ("body", "status", "reason"), [p[1:] for p in POLL_ABUSE], ids=[p[0] for p in POLL_ABUSE]
)
async def test_polling_abuse(
    server: Server, bystanders: Bystanders, http: aiohttp.ClientSession, body: bytes, status: int, reason: str
) -> None:
    client = await Polling(http, server).open()
    got_status, error = await client.post(body)
    assert got_status == status
    assert error["code"] == 3
    assert error["message"].startswith(reason)
    # the session is over at once (as engine.io's onError ends it): the next poll gets 400
    async with http.get(f"{client.base}&sid={client.sid}") as r:
        assert r.status == 400
        assert await r.json() == {"code": 1, "message": "Session ID unknown"}
    assert server.connection_count == 2
    await bystanders.still_fine()


@pytest.mark.parametrize(
    ("query", "method", "status", "error"),
    [
        ("EIO=4&transport=polling&sid=nope", "GET", 400, {"code": 1, "message": "Session ID unknown"}),
        ("EIO=4&transport=polling&sid=nope", "POST", 400, {"code": 1, "message": "Session ID unknown"}),
        ("EIO=3&transport=polling", "GET", 400, {"code": 5, "message": "Unsupported protocol version"}),
        ("transport=polling", "GET", 400, {"code": 5, "message": "Unsupported protocol version"}),
        ("EIO=4&transport=carrier-pigeon", "GET", 400, {"code": 0, "message": "Transport unknown"}),
        ("EIO=4", "GET", 400, {"code": 0, "message": "Transport unknown"}),
        ("EIO=4&transport=polling", "POST", 400, {"code": 2, "message": "Bad handshake method"}),
        ("EIO=4&transport=polling", "PUT", 400, {"code": 2, "message": "Bad handshake method"}),
        (
            "EIO=4&transport=websocket",
            "GET",
            400,
            {"code": 3, "message": "WebSocket transport needs an Upgrade request"},
        ),
    ],
)
async def test_bad_polling_requests(
    server: Server,
    bystanders: Bystanders,
    http: aiohttp.ClientSession,
    query: str,
    method: str,
    status: int,
    error: dict[str, Any],
) -> None:
    async with http.request(method, f"{server.url}/socket.io/?{query}", data=b"40") as r:
        assert r.status == status
        assert r.content_type == "application/json"
        assert await r.json() == error
    await bystanders.still_fine()


async def test_overlapping_gets(server: Server, bystanders: Bystanders, http: aiohttp.ClientSession) -> None:
    client = await Polling(http, server).open()
    first = asyncio.ensure_future(client.get())
    await wait_until(lambda: server.clients[client.sid].poll_waiter is not None, what="first GET held")
    async with http.get(f"{client.base}&sid={client.sid}") as r:
        assert r.status == 400
        assert await r.json() == {"code": 3, "message": "Overlapping GET requests"}
    assert await asyncio.wait_for(first, scaled(5)) == b"1"  # the held GET is told the session is closed
    assert client.sid not in server.clients
    await bystanders.still_fine()


async def test_polling_close_packet(server: Server, rec: Recorder, http: aiohttp.ClientSession) -> None:
    client = await Polling(http, server).open()
    held = asyncio.ensure_future(client.get())
    await wait_until(lambda: server.clients[client.sid].poll_waiter is not None, what="GET held")
    assert await client.post(b"1") == (200, b"ok")  # Engine.IO close from the client
    assert await asyncio.wait_for(held, scaled(5)) == b"6"  # a noop, as engine.io answers it on close
    assert rec.reasons() == ["transport close"]
    assert client.sid not in server.clients


async def test_binary_over_polling(server: Server, http: aiohttp.ClientSession) -> None:
    client = await Polling(http, server).open()
    body = b'451-1["bin",{"_placeholder":true,"num":0}]\x1ebAAEC'  # base64 of 00 01 02
    assert await client.post(body) == (200, b"ok")
    got = await client.get()
    parts = got.split(b"\x1e")
    assert (
        parts[0]
        == b'452-["bin",{"orig":{"_placeholder":true,"num":0},"rev":{"_placeholder":true,"num":1},"len":3}]'
    )
    assert parts[1:3] == [b"bAAEC", b"bAgEA"]
    assert parts[3].startswith(b"462-1[")


async def test_websocket_upgrade_errors(server: Server, bystanders: Bystanders) -> None:
    base = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    for url, status, error in [
        (f"{base}&sid=nope", 400, {"code": 1, "message": "Session ID unknown"}),
        (base.replace("EIO=4", "EIO=3"), 400, {"code": 5, "message": "Unsupported protocol version"}),
        (
            base.replace("transport=websocket", "transport=polling"),
            400,
            {"code": 0, "message": "Transport unknown"},
        ),
    ]:
        with pytest.raises(InvalidStatus) as info:
            await connect(url, open_timeout=scaled(5))
        assert info.value.response.status_code == status
        assert orjson.loads(info.value.response.body or b"") == error
    # a sid that is already on WebSocket cannot be upgraded again
    ws_sid = next(sid for sid, c in server.clients.items() if c.transport == "websocket")
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{base}&sid={ws_sid}", open_timeout=scaled(5))
    assert info.value.response.status_code == 400
    assert orjson.loads(info.value.response.body or b"")["message"] == "upgrade not possible in this state"
    await bystanders.still_fine()


async def test_bad_upgrade_probe_keeps_polling(
    server: Server, bystanders: Bystanders, http: aiohttp.ClientSession
) -> None:
    client = await Polling(http, server).open()
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket&sid={client.sid}"
    async with connect(url, open_timeout=scaled(5)) as probe:
        await probe.send('42["echo","not a probe"]')
        code, reason = await closed_with(probe)
        assert code == 1002
        assert reason == "unexpected packet " + repr('42["echo","not a probe"]'[:20]) + " during upgrade"
    # the session carries on over polling
    assert await client.post(b'421["echo","polling"]') == (200, b"ok")
    assert await client.get() == b'42["echo","polling"]\x1e431["polling"]'
    await bystanders.still_fine()


# -- raw HTTP --------------------------------------------------------------------------------------------


async def raw_http(server: Server, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh TCP connection; everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), scaled(wait))
    finally:
        writer.close()


async def test_garbage_http(server: Server, bystanders: Bystanders) -> None:
    answer = await raw_http(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"message":"Bad HTTP request' in answer and b"Connection: close" in answer
    await bystanders.still_fine()


async def test_huge_headers(server: Server, bystanders: Bystanders) -> None:
    request = (
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Big: "
        + b"a" * 20_000
        + b"\r\n\r\n"
    )
    answer = await raw_http(server, request)
    assert answer.startswith(b"HTTP/1.1 431 ")
    await bystanders.still_fine()


async def test_slow_request_gets_408(server: Server, bystanders: Bystanders) -> None:
    # half a request, then nothing: the handshake timeout (0.5 s here) answers 408 and closes
    answer = await raw_http(server, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    await bystanders.still_fine()


async def test_idle_keep_alive_connection_closes_silently(server: Server, bystanders: Bystanders) -> None:
    # A finished request on a keep-alive connection, then silence: the server may close the connection,
    # but must not write a 408 nobody asked for (a client reusing the connection would read it as the
    # answer to its next request).
    answer = await raw_http(server, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert answer.count(b"HTTP/1.1") == 1, answer
    await bystanders.still_fine()


async def test_pipelined_requests_answered_in_order(server: Server) -> None:
    requests = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await raw_http(server, requests)
    assert answer.count(b"HTTP/1.1 404 ") == 2, answer


async def test_polling_close_reaches_a_client_between_polls(
    server_factory: ServerFactory, http: aiohttp.ClientSession
) -> None:
    # The server ends a polling session while no GET is held (here: no CONNECT within connect_timeout).
    # The close packet must still reach the client on its next GET, not a 400 for an unknown sid.
    server = await server_factory(websocket={"connect_timeout": 0.3})
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as r:
        sid = orjson.loads((await r.read())[1:])["sid"]
    await wait_until(lambda: sid not in server.clients, what="connect timeout")
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}") as r:
        assert (r.status, await r.read()) == (200, b"1")
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}") as r:
        assert r.status == 400  # and then it is gone
    assert server.state.disconnects == {"connect timeout": 1}
