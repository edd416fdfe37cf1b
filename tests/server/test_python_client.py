"""python-socketio's AsyncClient against a real server, over websocket, polling, and polling + upgrade."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
import websockets

from tests.conftest import ServerFactory
from tests.helpers import Recorder, scaled, wait_until, within
from tests.server.clients import TRANSPORTS, SioClient
from tether import Router, Server, Socket


class Connect:
    """``await connect(auth=..., namespaces=...)``: a connected client on the transport under test."""

    def __init__(self, server: Server, transport: str) -> None:
        self.server = server
        self.transport = transport
        self.clients: list[SioClient] = []

    def new(self) -> SioClient:
        """A client not connected yet (it is closed at the end of the test all the same)."""
        client = SioClient(TRANSPORTS[self.transport])
        self.clients.append(client)
        return client

    async def __call__(self, **kwargs: Any) -> SioClient:
        return await self.new().connect(self.server.url, **kwargs)


@pytest.fixture(params=list(TRANSPORTS))
async def connect(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Connect]:
    factory = Connect(server, request.param)
    try:
        yield factory
    finally:
        for client in factory.clients:
            await client.close()


async def test_connect_with_auth(connect: Connect, server: Server, rec: Recorder) -> None:
    client = await connect(auth={"token": "secret", "user": "ann"})
    # the connect handler's emit arrived (connect() waited for "welcome"); it named this socket
    assert rec.connects == [("/", client.sid, {"token": "secret", "user": "ann"})]
    expected = {"websocket": "websocket", "polling": "polling", "upgrade": "websocket"}[connect.transport]
    await wait_until(lambda: client.sio.transport() == expected, what=f"transport {expected}")
    (eio_sid,) = server.clients
    assert server.clients[eio_sid].transport == expected
    await client.echo_works()


async def test_welcome_comes_right_after_the_connect_reply(connect: Connect) -> None:
    client = await connect(wait_welcome=False)
    # The client saw CONNECT first (connect() returned), then welcome carrying the sid it was given.
    (welcome,) = await client.next("welcome")
    assert welcome == {"sid": client.sid, "user": None}


@pytest.mark.parametrize("auth", [{"token": "wrong"}, {}, {"user": "no token"}])
async def test_reject(connect: Connect, server: Server, rec: Recorder, auth: dict[str, str]) -> None:
    client = connect.new()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth=auth)
    assert client.connect_errors == [
        ("/", {"code": 401, "message": "bad token", "data": {"code": 401, "message": "bad token"}})
    ]
    assert rec.connects == []
    assert server.state.rejected == 1
    # refused means refused: no socket was accepted after the CONNECT_ERROR
    assert server.state.sockets == 0
    assert len(server.namespaces["/"].rooms) == 0
    # the client gave up its Engine.IO session; the server let go of it too
    await wait_until(lambda: server.connection_count == 0, what="server to drop the rejected session")
    # and the server goes on serving others
    await (await connect()).echo_works()


async def test_emit_and_ack_both_ways(connect: Connect) -> None:
    client = await connect()
    # client -> server emit; the server emits back and answers the ack with the same arguments
    assert await client.call("echo", {"a": [1, 2]}) == {"a": [1, 2]}
    assert await client.next("echo") == ({"a": [1, 2]},)
    assert await client.call("echo", 1, "two", None) == (1, "two", None)
    assert await client.next("echo") == (1, "two", None)
    # a sync handler returning a tuple answers with several values
    assert await client.call("add", 2, 3) == (5, 6)
    # an emit without an ack gets the server's emit and nothing else
    await client.emit("echo", "no ack")
    assert await client.next("echo") == ("no ack",)
    # server -> client ack: the handler awaits the client's answer to "question"
    assert await client.call("ask", 21) == {"answer": 21, "from": "python"}
    assert await client.next("answer") == ({"answer": 21, "from": "python"},)
    assert client.questions == [21]


async def test_rooms(connect: Connect) -> None:
    a, b, c = await connect(), await connect(), await connect(auth={"token": "secret", "room": "red"})
    assert await a.call("join", "red") == ["red"]
    assert await b.call("join", "red") == ["red"]
    assert await b.call("join", "blue") == ["blue", "red"]
    assert await a.call("room_emit", {"room": "red", "msg": "hi red"}) is True
    assert await b.next("room_msg") == ("hi red",)
    assert await c.next("room_msg") == ("hi red",)  # joined at connect, from its auth
    assert await b.call("leave", "red") == ["blue"]
    assert await c.call("room_emit", {"room": "red", "msg": "second"}) is True
    assert await a.next("room_msg") == ("second",)
    # barriers: a round trip on each connection after the room emits; anything misdelivered came before it
    for client in (a, b, c):
        await client.echo_works()
    assert a.pending("room_msg") == 0  # sender of the first emit is left out
    assert b.pending("room_msg") == 0  # left before the second
    assert c.pending("room_msg") == 0  # sender of the second


async def test_broadcast_and_server_emit(connect: Connect) -> None:
    a, b, c = await connect(), await connect(), await connect()
    assert await a.call("broadcast", {"from": "a"}) is True
    assert await b.next("broadcast") == ({"from": "a"},)
    assert await c.next("broadcast") == ({"from": "a"},)
    await a.echo_works()
    assert a.pending("broadcast") == 0  # socket.broadcast leaves the sender out
    assert await b.call("shout", "all") is True
    for client in (a, b, c):  # server.emit reaches everyone, the sender included
        assert await client.next("shout") == ("all",)


async def test_binary(connect: Connect) -> None:
    client = await connect()
    blob = bytes(range(256)) * 40
    answer = await client.call("bin", blob)
    assert answer == {"orig": blob, "rev": blob[::-1], "len": len(blob)}
    assert await client.next("bin") == (answer,)
    assert await client.call("echo", {"nested": [b"\x00", {"x": b"\xff"}]}) == {
        "nested": [b"\x00", {"x": b"\xff"}]
    }


async def test_second_namespace(connect: Connect, rec: Recorder) -> None:
    client = await connect(namespaces=["/", "/chat"])
    assert [(ns, auth) for ns, _sid, auth in rec.connects] == [
        ("/", {"token": "secret"}),
        ("/chat", {"token": "secret"}),
    ]
    assert await client.call("echo", "x", namespace="/chat") == {"ns": "/chat", "args": ["x"]}
    assert await client.next("echo", "/chat") == ({"ns": "/chat", "args": ["x"]},)
    await client.echo_works()  # "/" is separate
    assert client.pending("echo", "/chat") == 0


async def test_invalid_namespace(connect: Connect, server: Server) -> None:
    client = connect.new()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, namespaces=["/nope"], wait_welcome=False)
    assert client.connect_errors == [("/nope", {"message": "Invalid namespace"})]
    await (await connect()).echo_works()


async def test_handler_that_raises(
    connect: Connect, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    client = await connect()
    with caplog.at_level(logging.ERROR, logger="tether.server"):
        await client.emit("boom", 1)
        await client.echo_works()
    assert server.state.handler_errors == 1
    (record,) = [r for r in caplog.records if "boom" in r.getMessage()]
    assert f"sid={client.sid}" in record.getMessage()
    assert "RuntimeError: boom on purpose" in record.getMessage()
    # an ack asked of a handler that raised is never answered, but the connection goes on
    with pytest.raises(socketio.exceptions.TimeoutError):
        await client.call("boom", timeout=0.3)
    await client.echo_works()


async def test_unknown_event_is_ignored(connect: Connect) -> None:
    client = await connect()
    await client.emit("no_such_event", {"x": 1})
    await client.echo_works()


async def test_client_disconnect_reason(connect: Connect, server: Server, rec: Recorder) -> None:
    client = await connect(namespaces=["/", "/chat"])
    sid = client.sid
    await client.sio.disconnect()
    reason = await rec.wait_disconnect(sid)
    if connect.transport == "polling":
        assert reason == "client namespace disconnect"
    else:
        # python-engineio closes the WebSocket without waiting for its write queue, so the DISCONNECT
        # packet may never leave the client: the server then sees the transport go.
        assert reason in ("client namespace disconnect", "transport close")
    # both namespaces (the disconnect handler is a plain def: it runs in a thread, and may end later)
    await wait_until(lambda: len(rec.reasons()) == 2, what="both namespaces' disconnect handlers")
    await wait_until(lambda: server.connection_count == 0, what="session gone")
    assert client.disconnects[0][1] == socketio.AsyncClient.reason.CLIENT_DISCONNECT


async def test_server_disconnect_reason(connect: Connect, server: Server, rec: Recorder) -> None:
    client = await connect()
    other = await connect()
    sid = client.sid
    await client.emit("kick")
    assert await rec.wait_disconnect(sid) == "server namespace disconnect"
    await client.wait_disconnected()
    assert client.disconnects == [("/", socketio.AsyncClient.reason.SERVER_DISCONNECT)]
    await other.echo_works()


async def test_server_shutdown_closes_sessions(connect: Connect, server: Server, rec: Recorder) -> None:
    client = await connect()
    await client.echo_works()
    await server.shutdown(timeout=1)
    await client.wait_disconnected()
    # A stopping server tells clients to come back: python-socketio takes an Engine.IO close packet as
    # final (SERVER_DISCONNECT, no reconnection), so the WebSocket is closed with 1012 (service restart)
    # and a polling session ends: reasons on which it reconnects.
    assert len(client.disconnects) == 1
    assert client.disconnects[0][1] != socketio.AsyncClient.reason.SERVER_DISCONNECT
    assert rec.reasons() == ["server shutting down"]


async def test_handler_uses_asyncio_timeout_before_its_first_await(server_factory: ServerFactory) -> None:
    # The hot path (receive_event) starts a handler outside any Task; 3.11's asyncio.timeout (and aiohttp's
    # timer) asked for one and raised, so the client got no answer.
    router = Router()

    @router.on("quick")
    async def quick(socket: Socket, x: int) -> int:
        async with asyncio.timeout(scaled(2)):
            return x + 1

    @router.on("stuck")
    async def stuck(socket: Socket) -> str:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.Event().wait()
        except TimeoutError:
            return "timed out"
        return "not reached"

    server = await server_factory(router)
    client = SioClient(["websocket"])
    try:
        await client.connect(server.url, wait_welcome=False)
        assert await client.call("quick", 41) == 42
        assert await client.call("stuck") == "timed out"
    finally:
        await client.close()


async def test_the_connect_handler_gets_auth_as_the_client_sent_it(server_factory: ServerFactory) -> None:
    # docs/migrating-from-python-socketio.md, "An empty auth": None when the CONNECT had no payload
    # (socket.io-client without its auth option), {} when it was empty (python-socketio's client without
    # auth=). python-socketio's server passes None for both: handlers test `if not auth`.
    seen: list[Any] = []
    router = Router()
    router.on("connect", lambda socket, auth: seen.append(auth))
    server = await server_factory(router)
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    for frame in ("40", "40{}"):
        async with websockets.connect(url) as ws:
            await within(ws.recv())  # the Engine.IO open packet
            await ws.send(frame)
            assert (await within(ws.recv())).startswith("40{")
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(server.url, transports=["websocket"], wait_timeout=scaled(5))
    await client.disconnect()
    await wait_until(lambda: len(seen) == 3, what="three connects")
    assert seen == [None, {}, {}]
