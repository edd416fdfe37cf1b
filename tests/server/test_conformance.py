"""Protocol conformance, fault by fault (issue 10) and the reserved event names (issue 13, item 1).

Each test feeds the input a bug report gave, over a raw Engine.IO WebSocket or raw long-polling, and checks
the answer the reference server (node socket.io 4.8) gives for it: see tests/server/test_reference.py for
the checks that run node itself.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect

from tests.hardening.support import raw_tcp, read_until_closed, upgrade_request, ws_frame
from tests.helpers import TEXT_BODY, Recorder, scaled, wait_until
from tether import Router, Server, Socket, run_server

from ..conftest import make_config

# -- the app: an echo, as the published test suites run it ---------------------------------------------


def echo_router(rec: Recorder) -> Router:
    router = Router()

    @router.on("connect")
    def connect(sock: Socket, auth: Any) -> None:
        rec.connects.append((sock.namespace, sock.sid, auth))

    @router.on("echo")
    def echo(sock: Socket, *args: Any) -> tuple[Any, ...]:
        return args

    @router.on("disconnect")
    def disconnect(sock: Socket, reason: str) -> None:
        rec.disconnects.append((sock.namespace, sock.sid, reason))

    @router.on("*")
    def anything(sock: Socket, name: str, *args: Any) -> None:
        rec.connects.append(("*", name, args))  # a reserved name must never get here

    return router


@pytest.fixture(scope="module")
def mrec() -> Recorder:
    return Recorder()


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(mrec: Recorder) -> AsyncIterator[Server]:
    config = make_config(websocket={"ping_interval": 0.3, "ping_timeout": 0.2, "connect_timeout": 1.0})
    server = await run_server(config, echo_router(mrec))
    try:
        yield server
    finally:
        await server.shutdown(timeout=scaled(2))


def ws_url(server: Server, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket{query}"


def poll_url(server: Server, sid: str | None = None, query: str = "") -> str:
    return f"{server.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "") + query


async def ws_open(server: Server, namespace_connect: bool = True) -> tuple[ClientConnection, str]:
    ws = await asyncio.wait_for(connect(ws_url(server), ping_interval=None, compression=None), scaled(5))
    opened = await asyncio.wait_for(ws.recv(), scaled(5))
    assert isinstance(opened, str) and opened.startswith("0")
    sid = orjson.loads(opened[1:])["sid"]
    if namespace_connect:
        await ws.send("40")
        reply = await asyncio.wait_for(ws.recv(), scaled(5))
        assert isinstance(reply, str) and reply.startswith("40{"), reply
    return ws, sid


async def recv_non_ping(ws: ClientConnection) -> str | bytes:
    while True:
        message = await asyncio.wait_for(ws.recv(), scaled(5))
        if message == "2":
            await ws.send("3")
            continue
        return message


class Poller:
    def __init__(self, session: aiohttp.ClientSession, server: Server) -> None:
        self.session = session
        self.server = server
        self.sid = ""

    async def open(self, namespace_connect: bool = True) -> Poller:
        status, body = await self.get()
        assert status == 200 and body.startswith("0"), body
        self.sid = orjson.loads(body[1:])["sid"]
        if namespace_connect:
            assert (await self.post("40"))[0] == 200
            status, body = await self.get()
            assert body.startswith("40{"), body
        return self

    async def get(self, timeout: float = 5.0) -> tuple[int, str]:
        url = poll_url(self.server, self.sid or None)
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=scaled(timeout))) as r:
            return r.status, await r.text()

    async def post(self, body: str | bytes) -> tuple[int, str]:
        data = body.encode() if isinstance(body, str) else body
        async with self.session.post(
            poll_url(self.server, self.sid),
            data=data,
            headers=TEXT_BODY,
            timeout=aiohttp.ClientTimeout(total=scaled(5)),
        ) as r:
            return r.status, await r.text()


@pytest_asyncio.fixture(loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# -- 1. the close handshake ---------------------------------------------------------------------------


async def test_close_without_code_is_answered_without_code(app: Server) -> None:
    # What browsers and node's ws send for close() without arguments: a close frame with no payload.
    reader, writer = await raw_tcp(app)
    writer.write(upgrade_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(ws_frame(b"", opcode=0x8))
    rest = await read_until_closed(reader, 5)
    # Server frames are unmasked: the open packet (text), then a close frame (0x88) with no payload.
    close_at = rest.rfind(b"\x88")
    assert close_at > 0 and rest[close_at + 1] == 0, rest  # length 0: no status code at all (never 0)
    writer.close()


async def test_close_frame_code_is_never_zero_and_always_valid(app: Server) -> None:
    for code in (1000, 1001, 4000):
        ws, _sid = await ws_open(app)
        await ws.close(code, "bye")
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == code


async def test_close_with_code_ends_the_session_as_transport_close(app: Server, mrec: Recorder) -> None:
    ws, _sid = await ws_open(app)
    sock_sid = next(s for ns, s, _a in reversed(mrec.connects) if ns == "/")
    await ws.close(1000)
    assert await mrec.wait_disconnect(sock_sid) == "transport close"


# -- 2, 3. polling: an invalid packet, a client close -------------------------------------------------


async def test_polling_invalid_packet_ends_the_session_at_once(
    app: Server, session: aiohttp.ClientSession, mrec: Recorder
) -> None:
    poller = await Poller(session, app).open()
    assert (await poller.post("abc"))[0] == 400
    assert (await poller.get())[0] == 400  # gone at once: no last close packet kept for it
    assert poller.sid not in app.clients


async def test_polling_client_close_answers_the_held_get_with_a_noop(
    app: Server, session: aiohttp.ClientSession, mrec: Recorder
) -> None:
    poller = await Poller(session, app).open()
    sock_sid = mrec.connects[-1][1]
    held = asyncio.create_task(poller.get())
    await wait_until(lambda: app.clients[poller.sid].poll_waiter is not None, 5, "the GET to be held")
    assert (await poller.post("1"))[0] == 200
    assert await held == (200, "6")
    assert (await poller.get())[0] == 400
    assert await mrec.wait_disconnect(sock_sid) == "transport close"


# -- 5. an unknown namespace ---------------------------------------------------------------------------


async def test_unknown_namespace_gets_exactly_invalid_namespace(app: Server) -> None:
    ws, _sid = await ws_open(app, namespace_connect=False)
    await ws.send("40/random,")
    assert await recv_non_ping(ws) == '44/random,{"message":"Invalid namespace"}'
    await ws.close()


# -- 8. lone surrogates --------------------------------------------------------------------------------


async def test_lone_surrogate_is_echoed_as_node_echoes_it_over_websocket(app: Server) -> None:
    ws, _sid = await ws_open(app)
    await ws.send('42300["echo","cut \\ud83c"]')
    assert await recv_non_ping(ws) == '43300["cut \\ud83c"]'
    # and the connection goes on: an ordinary event still takes the fast path
    await ws.send('42301["echo","ok 🎉"]')
    assert await recv_non_ping(ws) == '43301["ok 🎉"]'
    await ws.close()


async def test_lone_surrogate_is_echoed_over_polling(app: Server, session: aiohttp.ClientSession) -> None:
    poller = await Poller(session, app).open()
    assert (await poller.post('42300["echo","cut \\udc00 low"]'))[0] == 200
    assert await poller.get() == (200, '43300["cut \\udc00 low"]')
    assert (await poller.post('42301["echo",1]'))[0] == 200
    assert await poller.get() == (200, "43301[1]")


# -- 9. blank query values -----------------------------------------------------------------------------


async def test_blank_query_values_are_kept(session: aiohttp.ClientSession) -> None:
    seen: list[dict[str, str]] = []
    router = Router()

    @router.on("connect")
    def on_connect(sock: Socket, auth: Any) -> None:
        seen.append(dict(sock.request.query))

    server = await run_server(make_config(), router)
    try:
        query = "&token=a%2Bb&empty=&space=a+b"
        ws = await connect(ws_url(server, query), ping_interval=None)
        await ws.recv()
        await ws.send("40")
        await ws.recv()
        await ws.close()
        async with session.get(poll_url(server, query=query)) as r:
            sid = orjson.loads((await r.text())[1:])["sid"]
        async with session.post(poll_url(server, sid), data=b"40", headers=TEXT_BODY) as r:
            assert r.status == 200
        await wait_until(lambda: len(seen) == 2, 5, "both connects")
        for query_seen in seen:
            assert {k: query_seen[k] for k in ("token", "empty", "space")} == {
                "token": "a+b",
                "empty": "",
                "space": "a b",
            }
    finally:
        await server.shutdown(timeout=scaled(2))


# -- issue 13 item 1: the reserved event names --------------------------------------------------------

RESERVED = ["connect", "disconnect", "connect_error", "disconnecting", "newListener", "removeListener"]
TETHERS_OWN = ["session:extended", "tether:error"]


@pytest.mark.parametrize("name", RESERVED + TETHERS_OWN)
async def test_reserved_event_closes_the_websocket_as_a_forced_close(
    app: Server, mrec: Recorder, name: str
) -> None:
    ws, sid = await ws_open(app)
    sock_sid = next(s for ns, s, _a in reversed(mrec.connects) if ns == "/")
    await ws.send("42" + orjson.dumps([name, {"is_admin": True}]).decode())
    assert await mrec.wait_disconnect(sock_sid) == "forced close"  # as node
    await asyncio.wait_for(ws.wait_closed(), scaled(5))
    assert ("*", name, ({"is_admin": True},)) not in mrec.connects
    assert sid not in app.clients


@pytest.mark.parametrize("name", ["room:join", "sessions:list", "tether", "a:tether:error", "session"])
async def test_an_event_with_a_colon_that_is_not_reserved_reaches_its_route(
    app: Server, mrec: Recorder, name: str
) -> None:
    # The WebSocket fast path tests the reserved prefixes only for names with a colon: near misses of
    # both prefixes must still be handled, and stay connected.
    ws, sid = await ws_open(app)
    await ws.send("42" + orjson.dumps([name, 1]).decode())
    await wait_until(lambda: ("*", name, (1,)) in mrec.connects, 5, f"{name!r} at the catch-all route")
    assert sid in app.clients
    await ws.close()


@pytest.mark.parametrize(
    "packet",
    [
        '421["connect",{"is_admin":true}]',  # with an ack id: not the fast path
        '451-["disconnect",{"_placeholder":true,"num":0}]',  # binary
    ],
)
async def test_reserved_event_is_refused_on_every_path_of_the_websocket(
    app: Server, mrec: Recorder, packet: str
) -> None:
    ws, sid = await ws_open(app)
    sock_sid = next(s for ns, s, _a in reversed(mrec.connects) if ns == "/")
    await ws.send(packet)
    if packet.startswith("45"):
        await ws.send(b"\x01\x02")
    assert await mrec.wait_disconnect(sock_sid) == "forced close"  # as node
    assert sid not in app.clients


@pytest.mark.parametrize("body", ['42["connect",{"is_admin":true}]', '42["tether:error",1]'])
async def test_reserved_event_is_refused_over_polling(
    app: Server, session: aiohttp.ClientSession, mrec: Recorder, body: str
) -> None:
    poller = await Poller(session, app).open()
    assert (await poller.post(body))[0] == 400
    assert (await poller.get())[0] == 400
    assert poller.sid not in app.clients


async def test_reserved_event_is_refused_by_the_json_parser(session: aiohttp.ClientSession) -> None:
    rec = Recorder()
    server = await run_server(make_config(websocket={"parser": "json"}), echo_router(rec))
    try:
        ws = await connect(f"ws://127.0.0.1:{server.port}/ws", ping_interval=None)
        await wait_until(lambda: bool(rec.connects), 5, "the connect")
        await ws.send('{"event":"disconnect","data":"server shutting down"}')
        await asyncio.wait_for(ws.wait_closed(), scaled(5))
        await wait_until(lambda: bool(rec.reasons()), 5, "the disconnect")
        assert rec.reasons() == ["parse error"]
    finally:
        await server.shutdown(timeout=scaled(2))


# -- 4. heartbeat precision (one timer per process, waking at the next deadline) -----------------------


async def test_pings_go_out_every_ping_interval(app: Server) -> None:
    ws, _sid = await ws_open(app)
    loop = asyncio.get_running_loop()
    start = loop.time()
    pings: list[float] = []
    while len(pings) < 4:
        message = await asyncio.wait_for(ws.recv(), scaled(5))
        if message == "2":
            pings.append(loop.time() - start)
            await ws.send("3")
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # A fixed 0.5 s tick made these 0.5 s; the timer now wakes at each deadline (5 ms grid here).
    assert abs(sum(gaps) / len(gaps) - 0.3) < 0.05, gaps
    await ws.close()


async def test_silent_polling_client_is_gone_500_ms_after_the_handshake(
    app: Server, session: aiohttp.ClientSession
) -> None:
    # The published Engine.IO scenario: no GET, no pong; at ping_interval + ping_timeout the session is over.
    poller = await Poller(session, app).open(namespace_connect=False)
    await asyncio.sleep(0.5)
    assert (await poller.get())[0] == 400


async def test_the_heartbeat_timer_keeps_its_resolution_coarse_by_default() -> None:
    from tether.server.heartbeat import TICK, resolution_for

    assert resolution_for(25, 20, 45) == TICK  # W6: no more wake-ups than the 0.5 s tick had
    assert resolution_for(0.3, 0.2, 1.0) == 0.005


# -- 7. the connect lifecycle: a client that leaves, or repeats, while its connect handler runs --------


def slow_router(rec: Recorder, release: asyncio.Event) -> Router:
    router = Router()

    @router.on("connect")
    async def connect(sock: Socket, auth: Any) -> None:
        sock.join("lobby")
        sock.login_using("u-77")
        rec.connects.append((sock.namespace, sock.sid, auth))
        await asyncio.wait_for(release.wait(), scaled(5))
        if isinstance(auth, dict) and auth.get("refuse"):
            from tether import Reject

            raise Reject({"message": "no"})
        sock.join("after")  # after the client left, this must not bring it back either

    @router.on("disconnect")
    def disconnect(sock: Socket, reason: str) -> None:
        rec.disconnects.append((sock.namespace, sock.sid, reason))

    return router


def leaves_no_trace(server: Server) -> None:
    ns = server.namespaces["/"]
    assert not ns.rooms.members("lobby")
    assert not ns.rooms.members("after")
    assert len(ns.rooms) == 0
    assert not server.is_user_online("u-77")
    assert server.state.sockets == 0
    assert not server.clients


async def test_client_leaving_while_its_connect_handler_runs_leaves_no_trace() -> None:
    rec, release = Recorder(), asyncio.Event()
    server = await run_server(make_config(), slow_router(rec, release))
    try:
        reader, writer = await raw_tcp(server)
        writer.write(upgrade_request())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        writer.write(ws_frame(b'40{"slow":1}'))
        await wait_until(lambda: bool(rec.connects), 5, "the connect handler to start")
        assert server.is_user_online("u-77")  # what the handler did so far is real...
        writer.transport.abort()  # ...until the client resets the connection
        await wait_until(lambda: not server.clients, 5, "the session to close")
        release.set()
        await asyncio.sleep(0.05)
        leaves_no_trace(server)
        assert rec.disconnects == []  # never connected: no disconnect route (as node)
        server.to("lobby").emit("x")  # reaches nobody, and fails nothing
    finally:
        await server.shutdown(timeout=scaled(2))


@pytest.mark.parametrize("refuse", [False, True])
async def test_no_room_traffic_before_the_connect_reply(refuse: bool) -> None:
    rec, release = Recorder(), asyncio.Event()
    server = await run_server(make_config(), slow_router(rec, release))
    try:
        ws, _sid = await ws_open(server, namespace_connect=False)
        await ws.send("40" + orjson.dumps({"refuse": refuse}).decode())
        await wait_until(lambda: bool(rec.connects), 5, "the connect handler to start")
        server.to("lobby").emit("room news", 1)  # the socket is in lobby, but not connected yet
        release.set()
        first = await recv_non_ping(ws)
        if refuse:
            assert first == '44{"message":"no"}'
            await ws.send('42["ping"]')
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(recv_non_ping(ws), 0.3)  # the room traffic was dropped
            assert not server.namespaces["/"].rooms.members("lobby")
        else:
            assert isinstance(first, str) and first.startswith("40{")
            assert await recv_non_ping(ws) == '42["room news",1]'
        await ws.close()
    finally:
        await server.shutdown(timeout=scaled(2))


async def test_repeated_connect_makes_one_socket() -> None:
    rec, release = Recorder(), asyncio.Event()
    server = await run_server(make_config(), slow_router(rec, release))
    try:
        ws, _sid = await ws_open(server, namespace_connect=False)
        await ws.send("40")
        await ws.send("40")  # again while the first is connecting: ignored
        await wait_until(lambda: bool(rec.connects), 5, "the connect handler to start")
        release.set()
        first = await recv_non_ping(ws)
        assert isinstance(first, str) and first.startswith("40{")
        await ws.send("40")  # again once connected: the same socket, answered again
        assert await recv_non_ping(ws) == first
        assert len(rec.connects) == 1
        assert server.state.sockets == 1
        assert len(server.namespaces["/"].rooms) == 1
        await ws.close()
        await wait_until(lambda: server.state.sockets == 0, 5, "the close")
        leaves_no_trace(server)
    finally:
        await server.shutdown(timeout=scaled(2))


# -- 6. the upgrade: noops are for polling GETs only ---------------------------------------------------


@pytest.mark.parametrize("get_held_at_probe", [True, False])
async def test_upgrade_sends_no_noop_over_the_websocket(
    app: Server, session: aiohttp.ClientSession, get_held_at_probe: bool
) -> None:
    poller = await Poller(session, app).open()
    held = asyncio.create_task(poller.get()) if get_held_at_probe else None
    if held is not None:
        await wait_until(lambda: app.clients[poller.sid].poll_waiter is not None, 5, "the GET to be held")
    ws = await connect(ws_url(app, f"&sid={poller.sid}"), ping_interval=None)
    await ws.send("2probe")
    assert await recv_non_ping(ws) == "3probe"
    if held is not None:
        assert await held == (200, "6")
    # Every GET during the upgrade is answered at once, with a noop.
    assert await poller.get(timeout=2) == (200, "6")
    assert await poller.get(timeout=2) == (200, "6")
    await ws.send("5")
    await ws.send('42300["echo","on ws"]')
    assert await recv_non_ping(ws) == '43300["on ws"]'  # the first frame after 5: no "6" before it
    await ws.close()


# -- docs: the documented ways to pick a parser are the ones that work ---------------------------------


@pytest.mark.parametrize("spec", ["raw", "tether:RawParser", "tether.protocol.parsers:RawParser"])
async def test_documented_parser_specs_pick_the_raw_parser(spec: str) -> None:
    from pathlib import Path

    from tether import RawParser

    reference = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert "`tether:RawParser`" in reference and "tether.parsers" not in reference
    server = Server(make_config(websocket={"parser": spec}), Router())
    assert server.parser_cls is RawParser


async def test_a_class_that_is_not_a_parser_is_refused_with_the_right_name() -> None:
    from tether import ConfigError

    with pytest.raises(ConfigError, match=r"not a tether\.Parser subclass"):
        Server(make_config(websocket={"parser": "tether:Router"}), Router())
