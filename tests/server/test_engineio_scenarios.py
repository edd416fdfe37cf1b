"""The Engine.IO v4 protocol's published black-box test suite, scenario by scenario.

Source: socketio/engine.io-protocol, ``test-suite/test-suite.js`` (the EIO=4 version). One test per
``it(...)``, named after it, run against one real Tether server configured as the suite configures the
reference:
``pingInterval`` 300 ms, ``pingTimeout`` 200 ms, ``maxPayload`` 1,000,000 bytes, Engine.IO at ``/engine.io/``,
and an echo app (the ``raw`` parser: every Engine.IO message is sent back as it came, text or binary).

Where the suite ignores a packet by registering its listener late (a browser ``WebSocket`` drops events nobody
listens to), these tests read that packet explicitly, so nothing the server sends goes unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import TEXT_BODY, scaled
from tether import Router, Server, Socket, run_server

from ..conftest import make_config

PING_INTERVAL = 0.3
PING_TIMEOUT = 0.2
MAX_PAYLOAD = 1_000_000

pytestmark = pytest.mark.asyncio(loop_scope="module")


def echo_router() -> Router:
    router = Router()

    # async def, as the reference echoes on its loop: a def handler runs in the thread pool, and the two
    # echoes of one polling payload could then land in two polls.
    @router.on("message")
    async def message(sock: Socket, data: str | bytes) -> None:
        sock.emit("message", data)

    return router


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app() -> AsyncIterator[Server]:
    config = make_config(
        websocket={
            "path": "/engine.io/",
            "parser": "raw",
            "ping_interval": PING_INTERVAL,
            "ping_timeout": PING_TIMEOUT,
            "max_payload": MAX_PAYLOAD,
        }
    )
    server = await run_server(config, echo_router())
    try:
        yield server
    finally:
        await server.shutdown(timeout=scaled(2))


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(5))) as s:
        yield s


def url(server: Server, query: str) -> str:
    return f"{server.url}/engine.io/?{query}"


def ws_url(server: Server, query: str) -> str:
    return f"ws://127.0.0.1:{server.port}/engine.io/?{query}"


def polling(server: Server, sid: str | None = None) -> str:
    return url(server, "EIO=4&transport=polling" + (f"&sid={sid}" if sid else ""))


def websocket(server: Server, sid: str | None = None) -> str:
    return ws_url(server, "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else ""))


async def request(http: aiohttp.ClientSession, method: str, target: str, body: str = "") -> tuple[int, str]:
    data = body.encode() if body else None
    async with http.request(method, target, data=data, headers=TEXT_BODY if body else None) as r:
        return r.status, await r.text()


async def init_long_polling_session(http: aiohttp.ClientSession, server: Server) -> str:
    status, content = await request(http, "GET", polling(server))
    assert status == 200 and content.startswith("0"), content
    sid = orjson.loads(content[1:])["sid"]
    assert isinstance(sid, str)
    return sid


async def ws_connect(target: str) -> ClientConnection:
    return await asyncio.wait_for(connect(target, ping_interval=None, compression=None), scaled(5))


async def recv(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), scaled(5))


async def recv_non_ping(ws: ClientConnection) -> str | bytes:
    # Outside the heartbeat scenarios a 300 ms ping may come first on a loaded machine: answer it, read on.
    while (message := await recv(ws)) == "2":
        await ws.send("3")
    return message


async def poll_non_ping(http: aiohttp.ClientSession, server: Server, sid: str) -> tuple[int, str]:
    # Same for polling: a payload holding only the heartbeat's ping is answered and polled again.
    for _ in range(5):
        status, content = await request(http, "GET", polling(server, sid))
        packets = content.split("\x1e")
        if status != 200 or any(p != "2" for p in packets):
            return status, "\x1e".join(p for p in packets if p != "2")
        assert (await request(http, "POST", polling(server, sid), "3"))[0] == 200
    raise AssertionError("only pings came back")


async def closes(target: str) -> None:
    """The WebSocket is refused at the HTTP upgrade, or closed without ever sending an open packet."""
    try:
        ws = await ws_connect(target)
    except InvalidStatus as e:
        assert e.response.status_code == 400
        return
    with pytest.raises(ConnectionClosed):
        message = await recv(ws)
        raise AssertionError(f"got {message!r} instead of a close")


def assert_handshake(content: Any, upgrades: list[str]) -> None:
    assert isinstance(content, str) and content.startswith("0"), content
    value = orjson.loads(content[1:])
    assert set(value) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(value["sid"], str)
    assert value["upgrades"] == upgrades
    assert value["pingInterval"] == 300
    assert value["pingTimeout"] == 200
    assert value["maxPayload"] == 1000000


# -- handshake ---------------------------------------------------------------------------------------------


async def test_handshake_polling_successfully_opens_a_session(
    app: Server, http: aiohttp.ClientSession
) -> None:
    status, content = await request(http, "GET", polling(app))
    assert status == 200
    assert_handshake(content, ["websocket"])


async def test_handshake_polling_fails_with_an_invalid_eio_query_parameter(
    app: Server, http: aiohttp.ClientSession
) -> None:
    assert (await request(http, "GET", url(app, "transport=polling")))[0] == 400
    assert (await request(http, "GET", url(app, "EIO=abc&transport=polling")))[0] == 400


async def test_handshake_polling_fails_with_an_invalid_transport_query_parameter(
    app: Server, http: aiohttp.ClientSession
) -> None:
    assert (await request(http, "GET", url(app, "EIO=4")))[0] == 400
    assert (await request(http, "GET", url(app, "EIO=4&transport=abc")))[0] == 400


async def test_handshake_polling_fails_with_an_invalid_request_method(
    app: Server, http: aiohttp.ClientSession
) -> None:
    assert (await request(http, "POST", polling(app)))[0] == 400
    assert (await request(http, "PUT", polling(app)))[0] == 400


async def test_handshake_websocket_successfully_opens_a_session(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    assert_handshake(await recv(ws), [])
    await ws.close()


async def test_handshake_websocket_fails_with_an_invalid_eio_query_parameter(app: Server) -> None:
    await closes(ws_url(app, "transport=websocket"))
    await closes(ws_url(app, "EIO=abc&transport=websocket"))


async def test_handshake_websocket_fails_with_an_invalid_transport_query_parameter(app: Server) -> None:
    await closes(ws_url(app, "EIO=4"))
    await closes(ws_url(app, "EIO=4&transport=abc"))


# -- message -----------------------------------------------------------------------------------------------


async def sends_and_receives(app: Server, http: aiohttp.ClientSession, payload: str) -> None:
    sid = await init_long_polling_session(http, app)
    assert await request(http, "POST", polling(app, sid), payload) == (200, "ok")
    assert await poll_non_ping(http, app, sid) == (200, payload)


async def test_message_polling_sends_and_receives_a_payload_containing_one_plain_text_packet(
    app: Server, http: aiohttp.ClientSession
) -> None:
    await sends_and_receives(app, http, "4hello")


async def test_message_polling_sends_and_receives_a_payload_containing_several_plain_text_packets(
    app: Server, http: aiohttp.ClientSession
) -> None:
    await sends_and_receives(app, http, "4test1\x1e4test2\x1e4test3")


async def test_message_polling_sends_and_receives_a_payload_containing_plain_text_and_binary_packets(
    app: Server, http: aiohttp.ClientSession
) -> None:
    await sends_and_receives(app, http, "4hello\x1ebAQIDBA==")


async def test_message_polling_closes_the_session_upon_invalid_packet_format(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    assert (await request(http, "POST", polling(app, sid), "abc"))[0] == 400
    assert (await request(http, "GET", polling(app, sid)))[0] == 400


async def test_message_polling_closes_the_session_upon_duplicate_poll_requests(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    first = asyncio.ensure_future(request(http, "GET", polling(app, sid)))
    await asyncio.sleep(0.005)
    second = await request(http, "GET", polling(app, sid) + "&t=burst")
    assert await first == (200, "1")
    # node answers 500; the suite accepts 400 too, and a client error is what this is.
    assert second[0] in (400, 500)
    assert (await request(http, "GET", polling(app, sid)))[0] == 400


async def test_message_websocket_sends_and_receives_a_plain_text_packet(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    await recv(ws)  # handshake
    await ws.send("4hello")
    assert await recv_non_ping(ws) == "4hello"
    await ws.close()


async def test_message_websocket_sends_and_receives_a_binary_packet(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    await recv(ws)  # handshake
    await ws.send(bytes([1, 2, 3, 4]))
    assert await recv_non_ping(ws) == bytes([1, 2, 3, 4])
    await ws.close()


async def test_message_websocket_closes_the_session_upon_invalid_packet_format(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    await recv(ws)  # handshake
    await ws.send("abc")
    await asyncio.wait_for(ws.wait_closed(), scaled(2))


# -- heartbeat ---------------------------------------------------------------------------------------------


async def test_heartbeat_polling_sends_ping_pong_packets(app: Server, http: aiohttp.ClientSession) -> None:
    sid = await init_long_polling_session(http, app)
    for _ in range(3):
        assert await request(http, "GET", polling(app, sid)) == (200, "2")
        assert (await request(http, "POST", polling(app, sid), "3"))[0] == 200


async def test_heartbeat_polling_closes_the_session_upon_ping_timeout(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    await asyncio.sleep(PING_INTERVAL + PING_TIMEOUT)
    assert (await request(http, "GET", polling(app, sid)))[0] == 400


async def test_heartbeat_websocket_sends_ping_pong_packets(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    await recv(ws)  # handshake
    for _ in range(3):
        assert await recv(ws) == "2"
        await ws.send("3")
    await ws.close()


async def test_heartbeat_websocket_closes_the_session_upon_ping_timeout(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    assert_handshake(await recv(ws), [])
    assert await recv(ws) == "2"  # never answered
    # Closed at ping_interval + ping_timeout; the bound leaves room for a loaded machine.
    await asyncio.wait_for(ws.wait_closed(), scaled(PING_TIMEOUT + 1))


# -- close -------------------------------------------------------------------------------------------------


async def test_close_polling_forcefully_closes_the_session(app: Server, http: aiohttp.ClientSession) -> None:
    sid = await init_long_polling_session(http, app)
    poll = asyncio.ensure_future(request(http, "GET", polling(app, sid)))
    await asyncio.sleep(0.05)  # the suite sends both at once; the GET must be the one held
    assert (await request(http, "POST", polling(app, sid), "1"))[0] == 200
    assert await poll == (200, "6")
    assert (await request(http, "GET", polling(app, sid)))[0] == 400


async def test_close_websocket_forcefully_closes_the_session(app: Server) -> None:
    ws = await ws_connect(websocket(app))
    await recv(ws)  # handshake
    await ws.send("1")
    await asyncio.wait_for(ws.wait_closed(), scaled(2))


# -- upgrade -----------------------------------------------------------------------------------------------


async def test_upgrade_successfully_upgrades_from_http_long_polling_to_websocket(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    ws = await ws_connect(websocket(app, sid))
    await ws.send("2probe")
    assert await recv(ws) == "3probe"
    # A noop packet ends the HTTP long-polling request cleanly.
    assert await request(http, "GET", polling(app, sid)) == (200, "6")
    await ws.send("5")  # complete the upgrade
    await ws.send("4hello")
    assert await recv_non_ping(ws) == "4hello"
    await ws.close()


async def test_upgrade_ignores_http_requests_with_same_sid_after_upgrade(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    ws = await ws_connect(websocket(app, sid))
    await ws.send("2probe")
    await ws.send("5")
    assert await recv(ws) == "3probe"
    assert (await request(http, "GET", polling(app, sid)))[0] == 400
    await ws.send("4hello")
    assert await recv_non_ping(ws) == "4hello"
    await ws.close()


async def test_upgrade_ignores_websocket_connection_with_same_sid_after_upgrade(
    app: Server, http: aiohttp.ClientSession
) -> None:
    sid = await init_long_polling_session(http, app)
    ws = await ws_connect(websocket(app, sid))
    await ws.send("2probe")
    await ws.send("5")
    assert await recv(ws) == "3probe"
    await closes(websocket(app, sid))
    await ws.send("4hello")
    assert await recv_non_ping(ws) == "4hello"
    await ws.close()
