"""The Socket.IO v5 protocol's published black-box test suite (socket.io-protocol,
``test-suite/test-suite.js``, its "Socket.IO protocol" part: connect, disconnect, message): every
``it(...)`` is one test here, of the same name, run over both transports: a raw WebSocket and raw HTTP
long-polling (Engine.IO v4 payloads, ``\\x1e``-separated, binary as ``b`` + base64). ``EIO=4`` throughout:
the Socket.IO v5 protocol rides on Engine.IO v4 (older copies of the suite still say ``EIO=3``).

The server is configured as the suite configures the reference (pingInterval 300 ms, pingTimeout 200 ms,
maxPayload 1,000,000, connectTimeout 1,000 ms) and runs the suite's echo app (tests/apps/socketio_suite.py).
Each client answers the server's pings from a background reader, so a slow test machine never loses the
session to the 200 ms ping timeout; the suite's bare WebSocket never answers them, and one scenario
depends on that (see test_should_disconnect_from_the_main_namespace). Where the suite waits for the
WebSocket "close" event, the polling client waits for the end of the session: a CLOSE packet in a GET, or
a GET answered 400 (unknown sid).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.apps.socketio_suite import build_router
from tests.helpers import TEXT_BODY, Recorder, scaled
from tether import Server, run_server

from ..conftest import make_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

Packet = str | bytes


@pytest.fixture(scope="module")
def srec() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(srec: Recorder) -> AsyncIterator[Server]:
    config = make_config(
        websocket={
            "ping_interval": 0.3,
            "ping_timeout": 0.2,
            "connect_timeout": 1.0,
            "max_payload": 1_000_000,
        }
    )
    server = await run_server(config, build_router(srec))
    try:
        yield server
    finally:
        await server.shutdown(timeout=scaled(2))


class Client:
    """One Engine.IO session, either transport: ``send`` a packet, ``recv`` the next non-ping packet,
    ``closed`` waits for the end of the session. Pings are answered in the background."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Packet] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.answer_pings = True
        """False: behave as the suite's bare WebSocket, which never answers a ping."""

    async def send(self, packet: Packet) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def recv(self) -> Packet:
        return await asyncio.wait_for(self.inbox.get(), scaled(5))

    async def closed(self) -> None:
        await asyncio.wait_for(self.ended.wait(), scaled(5))

    async def handshake(self, auth_packet: str = "40") -> None:
        """The suite's initSocketIOConnection(): connect to ``/``, read the CONNECT reply and "auth"."""
        await self.send(auth_packet)
        assert str(await self.recv()).startswith("40")
        assert str(await self.recv()).startswith('42["auth"')


class WsClient(Client):
    ws: ClientConnection

    async def open(self, server: Server) -> WsClient:
        url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
        self.ws = await asyncio.wait_for(connect(url, ping_interval=None, compression=None), scaled(5))
        opened = await asyncio.wait_for(self.ws.recv(), scaled(5))
        assert isinstance(opened, str) and opened.startswith("0"), opened
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message == "2":
                    if self.answer_pings:
                        await self.ws.send("3")
                else:
                    self.inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self.ended.set()

    async def send(self, packet: Packet) -> None:
        with contextlib.suppress(ConnectionClosed):  # the suite's send() on a closing socket is no error
            await self.ws.send(packet)

    async def aclose(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await asyncio.wait_for(self.reader, scaled(5))


def decode_payload(body: bytes) -> list[Packet]:
    packets: list[Packet] = []
    for part in body.decode().split("\x1e"):
        packets.append(base64.b64decode(part[1:]) if part.startswith("b") else part)
    return packets


class PollClient(Client):
    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__()
        self.session = session
        self.url = ""
        self.post_lock = asyncio.Lock()  # one POST at a time, as Engine.IO v4 requires

    async def open(self, server: Server) -> PollClient:
        base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        async with self.session.get(base, timeout=aiohttp.ClientTimeout(total=scaled(5))) as r:
            body = await r.text()
        assert r.status == 200 and body.startswith("0"), body
        self.url = f"{base}&sid={orjson.loads(body[1:])['sid']}"
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            for _ in range(1000):  # bounded: a test lasts far fewer polls
                async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=scaled(5))) as r:
                    if r.status != 200:
                        return
                    body = await r.read()
                for packet in decode_payload(body):
                    if packet == "1":
                        return
                    if packet == "2":
                        if self.answer_pings:
                            await self.send("3")
                    elif packet != "6":
                        self.inbox.put_nowait(packet)
        except (aiohttp.ClientError, TimeoutError):
            return
        finally:
            self.ended.set()

    async def send(self, packet: Packet) -> None:
        body = b"b" + base64.b64encode(packet) if isinstance(packet, bytes) else packet.encode()
        async with self.post_lock:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.session.post(
                    self.url, data=body, headers=TEXT_BODY, timeout=aiohttp.ClientTimeout(total=scaled(5))
                ):
                    pass  # a refused packet is answered 400 and ends the session: closed() sees that

    async def aclose(self) -> None:
        if not self.ended.is_set():
            await self.send("1")
        if self.reader is not None:
            await asyncio.wait_for(self.reader, scaled(5))


@pytest_asyncio.fixture(loop_scope="module", params=["polling", "websocket"])
async def client(request: pytest.FixtureRequest, app: Server) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        c: Client = await (
            PollClient(session).open(app) if request.param == "polling" else WsClient().open(app)
        )
        try:
            yield c
        finally:
            await c.aclose()


def handshake_of(packet: Packet, prefix: str) -> dict[str, Any]:
    assert isinstance(packet, str) and packet.startswith(prefix), packet
    value = orjson.loads(packet[len(prefix) :])
    assert isinstance(value, dict)
    return value


# -- connect ------------------------------------------------------------------------------------------


async def test_should_allow_connection_to_the_main_namespace(client: Client) -> None:
    await client.send("40")
    handshake = handshake_of(await client.recv(), "40")
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await client.recv() == '42["auth",{}]'


async def test_should_allow_connection_to_the_main_namespace_with_a_payload(client: Client) -> None:
    await client.send('40{"token":"123"}')
    handshake = handshake_of(await client.recv(), "40")
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await client.recv() == '42["auth",{"token":"123"}]'


async def test_should_allow_connection_to_a_custom_namespace(client: Client) -> None:
    await client.send("40/custom,")
    handshake = handshake_of(await client.recv(), "40/custom,")
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await client.recv() == '42/custom,["auth",{}]'


async def test_should_allow_connection_to_a_custom_namespace_with_a_payload(client: Client) -> None:
    await client.send('40/custom,{"token":"abc"}')
    handshake = handshake_of(await client.recv(), "40/custom,")
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await client.recv() == '42/custom,["auth",{"token":"abc"}]'


async def test_should_disallow_connection_to_an_unknown_namespace(client: Client) -> None:
    await client.send("40/random")
    assert await client.recv() == '44/random,{"message":"Invalid namespace"}'


async def test_should_disallow_connection_with_an_invalid_handshake(client: Client) -> None:
    await client.send("4abc")
    await client.closed()


# -- disconnect ---------------------------------------------------------------------------------------


async def test_should_disconnect_from_the_main_namespace(client: Client, srec: Recorder) -> None:
    # A DISCONNECT leaves the Engine.IO session open, in node 4.8 (Client._remove closes nothing) as in
    # Tether; the "close" the suite waits for comes from the ping timeout, as its bare WebSocket never answers
    # a ping. So this client stops answering too, and the session must end within interval + timeout.
    await client.handshake()
    sid = srec.connects[-1][1]
    client.answer_pings = False
    await client.send("41")
    await client.closed()
    assert [(ns, reason) for ns, s, reason in srec.disconnects if s == sid] == [
        ("/", "client namespace disconnect")
    ]


async def test_should_connect_then_disconnect_from_a_custom_namespace(client: Client) -> None:
    await client.handshake()
    await client.send("40/custom")
    assert str(await client.recv()).startswith("40/custom,")
    assert await client.recv() == '42/custom,["auth",{}]'
    await client.send("41/custom")
    await client.send('42["message","message to main namespace"]')
    assert await client.recv() == '42["message-back","message to main namespace"]'


# -- message ------------------------------------------------------------------------------------------


async def test_should_send_a_plain_text_packet(client: Client) -> None:
    await client.handshake()
    await client.send('42["message",1,"2",{"3":[true]}]')
    assert await client.recv() == '42["message-back",1,"2",{"3":[true]}]'


async def test_should_send_a_packet_with_binary_attachments(client: Client) -> None:
    await client.handshake()
    await client.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    await client.send(bytes([1, 2, 3]))
    await client.send(bytes([4, 5, 6]))
    packets = [await client.recv() for _ in range(3)]
    assert packets == [
        '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        bytes([1, 2, 3]),
        bytes([4, 5, 6]),
    ]


async def test_should_send_a_plain_text_packet_with_an_ack(client: Client) -> None:
    await client.handshake()
    await client.send('42456["message-with-ack",1,"2",{"3":[false]}]')
    assert await client.recv() == '43456[1,"2",{"3":[false]}]'


async def test_should_send_a_packet_with_binary_attachments_and_an_ack(client: Client) -> None:
    await client.handshake()
    await client.send(
        '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    )
    await client.send(bytes([1, 2, 3]))
    await client.send(bytes([4, 5, 6]))
    packets = [await client.recv() for _ in range(3)]
    assert packets == [
        '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        bytes([1, 2, 3]),
        bytes([4, 5, 6]),
    ]


async def test_should_close_the_connection_upon_invalid_format_unknown_packet_type(client: Client) -> None:
    await client.handshake()
    await client.send("4abc")
    await client.closed()


async def test_should_close_the_connection_upon_invalid_format_invalid_payload_format(client: Client) -> None:
    await client.handshake()
    await client.send("42{}")
    await client.closed()


async def test_should_close_the_connection_upon_invalid_format_invalid_ack_id(client: Client) -> None:
    await client.handshake()
    await client.send('42abc["message-with-ack",1,"2",{"3":[false]}]')
    await client.closed()
