"""The WebSocket handshake as Tether hands it to picows (server/http.py ``_hand_off``, server/websocket.py).

Tether parses the upgrade request with httptools and replays only the request line and the handshake's
headers to picows; the connection keeps Tether's own :class:`~tether.handler.Headers` as its
``Request.headers``, every handshake is answered with one shared 101 response, and picows' copy of the
request headers is dropped once connected (issue 16, W3: ~2 KiB less per idle connection). These tests pin
what that must not change: what a client sees (compared with node socket.io 4.8 where a client could tell),
what a handler reads, and what picows is left holding.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import pytest_asyncio

from tests.hardening.support import ws_frame
from tests.helpers import TEXT_BODY, scaled, wait_until
from tether import Request, Router, Server, Socket, run_server
from tether.handler import Headers
from tether.server.websocket import _NO_HEADERS, _SWITCHING

from ..conftest import make_config
from .test_disconnect_reasons_vs_node import Target

pytestmark = pytest.mark.asyncio(loop_scope="module")

WS_PATH = "/socket.io/?EIO=4&transport=websocket"


def _accept(key: str) -> str:
    """RFC 6455 §4.2.2: base64(SHA-1(key + GUID))."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


async def _handshake(
    port: int, connection: str, upgrade: str = "websocket", extra: str = ""
) -> tuple[int, str]:
    """Send one upgrade request with a fresh key; (status, what the client would check as the accept)."""
    key = base64.b64encode(os.urandom(16)).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: {connection}\r\n"
            f"Upgrade: {upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            f"{extra}\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    accept = fields.get("sec-websocket-accept", "")
    return status, "ok" if accept == _accept(key) else accept


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seen() -> dict[str, Request]:
    return {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tether(seen: dict[str, Request]) -> AsyncIterator[Server]:
    router = Router()

    async def connect(socket: Socket) -> None:
        seen[socket.client.request.headers.get("x-trace", "")] = socket.client.request

    router.on("connect", connect)
    server = await run_server(make_config(), router)
    yield server
    await server.shutdown()


@pytest.mark.parametrize(
    ("connection", "upgrade"),
    [
        ("Upgrade", "websocket"),
        ("upgrade", "websocket"),
        ("keep-alive, Upgrade", "websocket"),  # what Firefox sends
        ("Upgrade, keep-alive", "websocket"),
        ("Upgrade", "WebSocket"),
    ],
)
async def test_handshake_is_accepted_as_node_accepts_it(
    tether: Server, node: Target, connection: str, upgrade: str
) -> None:
    # Before the replay was rebuilt, picows saw the client's own Connection header and refused every value
    # but a lone "upgrade": Firefox's "keep-alive, Upgrade" got a 400 (node: 101).
    assert await _handshake(node.port, connection, upgrade) == (101, "ok")
    assert await _handshake(tether.port, connection, upgrade) == (101, "ok")


async def test_each_handshake_gets_its_own_accept(tether: Server) -> None:
    # Every 101 is the one shared response object, its accept value set just before it is written.
    results = await asyncio.gather(*(_handshake(tether.port, "Upgrade") for _ in range(20)))
    assert results == [(101, "ok")] * 20


async def test_upgrade_with_a_body_is_still_refused(tether: Server) -> None:
    # A handshake has no body (RFC 6455 §4.1); picows refuses one, and still sees the header to do it.
    status, _ = await _handshake(tether.port, "Upgrade", extra="Content-Length: 5\r\n")
    assert status == 400


async def test_handler_reads_every_header_case_insensitively(
    tether: Server, seen: dict[str, Request]
) -> None:
    extra = "X-Trace: ws-1\r\nCookie: sessionid=abc; theme=dark\r\nUser-Agent: Tester/1.0\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", tether.port)
    writer.write(
        f"GET {WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        f"{extra}\r\n".encode()
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    writer.write(ws_frame(b"40"))
    try:
        await wait_until(lambda: "ws-1" in seen, scaled(5), "the connect handler")
        request = seen["ws-1"]
        headers = request.headers
        assert isinstance(headers, Headers)
        assert headers.get("Cookie") == headers["cookie"] == "sessionid=abc; theme=dark"
        assert "USER-AGENT" in headers and headers.get("user-agent") == "Tester/1.0"
        assert request.cookies == {"sessionid": "abc", "theme": "dark"}
        assert headers.get("sec-websocket-version") == "13"
        # What picows was left holding: no copy of the headers, the shared 101.
        (client,) = [c for c in tether.clients.values() if c.request is request]
        assert client.ws.request.headers is _NO_HEADERS and len(_NO_HEADERS) == 0
        assert client.ws.response is _SWITCHING
    finally:
        writer.close()


async def test_polling_headers_are_case_insensitive_too(tether: Server, seen: dict[str, Request]) -> None:
    base = f"http://127.0.0.1:{tether.port}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(headers={"X-Trace": "poll-1", "Cookie": "a=1"}) as http:
        async with http.get(base) as resp:
            sid = orjson.loads((await resp.read())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=b"40", headers=TEXT_BODY) as resp:
            assert resp.status == 200
        await wait_until(lambda: "poll-1" in seen, scaled(5), "the connect handler")
    headers = seen["poll-1"].headers
    assert headers.get("X-Trace") == "poll-1" and headers.get("COOKIE") == "a=1"
