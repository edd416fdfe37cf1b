"""The bare WebSocket endpoint ``/ws`` with a raw client (the ``websockets`` package), as the article's page
uses it: ``42["loginCheck",{...}]`` frames in, ``42["message",{...}]`` frames out, no Engine.IO handshake.
Also the json and raw parsers there, and the raw parser as a plain Engine.IO server on /socket.io/.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.helpers import Recorder, scaled, wait_until
from tether import Reject, Router, Server, Socket

HOLDING = "eyJLQNDqj0y473pCJ6zjMTUyOTk5NzU1MgnVMQ==$d84XkeMCv7umajhMRiU"


def ws_url(server: Server, path: str = "/ws", query: str = "token=secret") -> str:
    return f"ws://127.0.0.1:{server.port}{path}" + (f"?{query}" if query else "")


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), scaled(timeout))


async def recv_sio(ws: ClientConnection) -> tuple[str, Any]:
    """The next frame, split as Socket.IO framing: (head, decoded JSON)."""
    frame = await recv(ws)
    assert isinstance(frame, str), frame
    i = next((i for i, ch in enumerate(frame) if ch in "[{"), len(frame))
    return frame[:i], orjson.loads(frame[i:]) if i < len(frame) else None


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str]:
    """Read until the server closes; its close code and reason."""
    try:
        while True:
            await recv(ws, timeout)
    except ConnectionClosed:
        pass
    assert ws.protocol.close_rcvd is not None, "the server did not send a close frame"
    return ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason


async def open_bare(server: Server, query: str = "token=secret") -> ClientConnection:
    """A /ws connection past its opening frames (CONNECT reply and the connect handler's welcome)."""
    ws = await connect(ws_url(server, query=query), open_timeout=scaled(5))
    head, data = await recv_sio(ws)
    assert head == "40" and set(data) == {"sid"}
    head, welcome = await recv_sio(ws)
    assert head == "42" and welcome[0] == "welcome" and welcome[1]["sid"] == data["sid"]
    return ws


# -- the article's framing ----------------------------------------------------------------------------------


async def test_login_check_as_in_the_article(server: Server, rec: Recorder) -> None:
    async with connect(ws_url(server), open_timeout=scaled(5)) as ws:
        connected = await recv(ws)
        assert isinstance(connected, str) and connected.startswith('40{"sid":"')
        sid = orjson.loads(connected[2:])["sid"]
        assert await recv(ws) == f'42["welcome",{{"sid":"{sid}","user":null}}]'
        # the page's encodeMessage('loginCheck', {holding}) and the controller's answer, byte for byte
        await ws.send('42["loginCheck",{"holding":"' + HOLDING + '"}]')
        assert await recv(ws) == '42["message",{"code":200,"message":"success"}]'
        await ws.send('42["loginCheck",{}]')
        assert await recv(ws) == '42["message",{"code":422,"message":"Parameter error"}]'
        # the page's decodeMessage(): JSON.parse(str.substring(2))[1]
        await ws.send('42["loginCheck",{"holding":"x"}]')
        frame = await recv(ws)
        assert isinstance(frame, str) and orjson.loads(frame[2:])[1] == {"code": 200, "message": "success"}
    assert await rec.wait_disconnect(sid) == "transport close"


async def test_auth_from_query_and_reject(server: Server, rec: Recorder) -> None:
    async with connect(ws_url(server, query="token=secret&user=ann"), open_timeout=scaled(5)) as ws:
        head, data = await recv_sio(ws)
        assert head == "40"
        assert rec.connects == [("/", data["sid"], {"token": "secret", "user": "ann"})]
    async with connect(ws_url(server, query="token=wrong"), open_timeout=scaled(5)) as ws:
        head, error = await recv_sio(ws)
        assert (head, error) == (
            "44",
            {"code": 401, "message": "bad token", "data": {"code": 401, "message": "bad token"}},
        )
        assert await closed_with(ws) == (1008, "connect rejected")
    assert server.state.rejected == 1
    assert server.state.sockets == 0  # nothing was accepted after the refusal
    await wait_until(lambda: server.connection_count == 0, what="rejected /ws connection gone")


async def test_emit_and_ack_both_ways(server: Server) -> None:
    async with await open_bare(server) as ws:
        await ws.send('425["echo",{"a":1},2]')
        assert await recv_sio(ws) == ("42", ["echo", {"a": 1}, 2])
        assert await recv_sio(ws) == ("435", [{"a": 1}, 2])
        await ws.send('426["add",2,3]')
        assert await recv_sio(ws) == ("436", [5, 6])
        # server -> client ack: the server asks, the page answers with 43<id>[...]
        await ws.send('427["ask",21]')
        head, question = await recv_sio(ws)
        assert question == ["question", 21] and head.startswith("42") and head[2:].isdigit()
        await ws.send(f'43{head[2:]}[{{"from":"page"}}]')
        assert await recv_sio(ws) == ("42", ["answer", {"from": "page"}])
        assert await recv_sio(ws) == ("437", [{"from": "page"}])


async def test_rooms_and_broadcast(server: Server) -> None:
    async with await open_bare(server) as a, await open_bare(server) as b, await open_bare(server) as c:
        await a.send('421["join","red"]')
        assert await recv_sio(a) == ("431", [["red"]])
        await b.send('421["join","red"]')
        assert await recv_sio(b) == ("431", [["red"]])
        await c.send('422["room_emit",{"room":"red","msg":"hi"}]')
        assert await recv_sio(a) == ("42", ["room_msg", "hi"])
        assert await recv_sio(b) == ("42", ["room_msg", "hi"])
        assert await recv_sio(c) == ("432", [True])  # and nothing before it: c is not in the room
        await a.send('423["broadcast","all but a"]')
        assert await recv_sio(b) == ("42", ["broadcast", "all but a"])
        assert await recv_sio(c) == ("42", ["broadcast", "all but a"])
        assert await recv_sio(a) == ("433", [True])
        await b.send('42["shout","everyone"]')
        for ws in (a, b, c):
            assert await recv_sio(ws) == ("42", ["shout", "everyone"])


async def test_binary(server: Server) -> None:
    async with await open_bare(server) as ws:
        await ws.send('451-9["bin",{"_placeholder":true,"num":0}]')
        await ws.send(b"\x00\x01\x02")
        head, data = await recv_sio(ws)
        ph0, ph1 = {"_placeholder": True, "num": 0}, {"_placeholder": True, "num": 1}
        assert (head, data) == ("452-", ["bin", {"orig": ph0, "rev": ph1, "len": 3}])
        assert await recv(ws) == b"\x00\x01\x02"
        assert await recv(ws) == b"\x02\x01\x00"
        assert await recv_sio(ws) == ("462-9", [{"orig": ph0, "rev": ph1, "len": 3}])
        assert await recv(ws) == b"\x00\x01\x02"
        assert await recv(ws) == b"\x02\x01\x00"


async def test_second_namespace(server: Server) -> None:
    async with await open_bare(server) as ws:
        await ws.send("40/chat,")
        head, data = await recv_sio(ws)
        assert head == "40/chat," and set(data) == {"sid"}
        assert await recv_sio(ws) == ("42/chat,", ["welcome", {"ns": "/chat"}])
        await ws.send('42/chat,1["echo","x"]')
        assert await recv_sio(ws) == ("42/chat,", ["echo", {"ns": "/chat", "args": ["x"]}])
        assert await recv_sio(ws) == ("43/chat,1", [{"ns": "/chat", "args": ["x"]}])
        await ws.send("40/nope,")
        assert await recv_sio(ws) == (
            "44/nope,",
            {"message": "Invalid namespace"},
        )
        await ws.send('421["echo","still here"]')
        assert await recv_sio(ws) == ("42", ["echo", "still here"])


async def test_refused_second_namespace_keeps_the_first(server: Server) -> None:
    def only_root(socket: Socket, auth: Any) -> None:
        if socket.namespace != "/":
            raise Reject({"message": "not you"})

    server.connect_hooks.append(only_root)
    async with await open_bare(server) as ws:
        await ws.send("40/chat,")
        assert await recv_sio(ws) == ("44/chat,", {"message": "not you"})
        await ws.send('421["echo","root still works"]')
        assert await recv_sio(ws) == ("42", ["echo", "root still works"])
    # refused with nothing else connected: the page is told and the WebSocket closes
    async with connect(ws_url(server, query="token=bad"), open_timeout=scaled(5)) as ws:
        assert (await recv_sio(ws))[0] == "44"
        assert await closed_with(ws) == (1008, "connect rejected")


async def test_ping_gets_pong(server: Server) -> None:
    async with await open_bare(server) as ws:
        await ws.send("2")
        assert await recv(ws) == "3"
        await ws.send('421["echo","after ping"]')
        assert await recv_sio(ws) == ("42", ["echo", "after ping"])


async def test_server_pings_with_websocket_ping_frames(server_factory: ServerFactory) -> None:
    # The page speaks no Engine.IO, so the heartbeat uses WebSocket ping frames (answered by the browser).
    server = await server_factory(websocket={"ping_interval": 0.2, "ping_timeout": 1.0})
    async with await open_bare(server) as ws:
        await asyncio.sleep(scaled(1.5))  # several ping intervals and more than ping_timeout
        await ws.send('421["echo","alive"]')
        assert await recv_sio(ws) == ("42", ["echo", "alive"])
        assert server.connection_count == 1


async def test_disconnect_reasons(server: Server, rec: Recorder) -> None:
    ws = await open_bare(server)
    await ws.send('42["kick"]')
    assert await recv(ws) == "41"
    assert await closed_with(ws) == (1000, "server namespace disconnect")
    assert rec.reasons() == ["server namespace disconnect"]
    async with await open_bare(server) as ws:
        await ws.send("41")  # the page leaves "/"
        await ws.send('421["echo",1]')  # ignored: not connected to "/" any more
        await ws.send('40{"token":"secret"}')  # and comes back; the CONNECT payload is the auth now
        head, data = await recv_sio(ws)
        assert head == "40" and set(data) == {"sid"}
        assert await recv_sio(ws) == ("42", ["welcome", {"sid": data["sid"], "user": None}])
    await wait_until(lambda: len(rec.reasons()) == 3, what="disconnects")
    assert rec.reasons() == ["server namespace disconnect", "client namespace disconnect", "transport close"]


# -- the json parser ---------------------------------------------------------------------------------------


async def test_json_parser_on_bare_endpoint(server_factory: ServerFactory, rec: Recorder) -> None:
    server = await server_factory(websocket={"parser": "json"})
    async with connect(ws_url(server), open_timeout=scaled(5)) as ws:
        # no CONNECT reply in this framing: the connect handler's emit comes first
        welcome = orjson.loads(await recv(ws))
        assert welcome["event"] == "welcome"
        await ws.send(orjson.dumps({"event": "loginCheck", "data": {"holding": HOLDING}}).decode())
        assert orjson.loads(await recv(ws)) == {
            "event": "message",
            "data": {"code": 200, "message": "success"},
        }
        await ws.send('{"event":"echo","data":{"a":1},"ack":4}')
        assert orjson.loads(await recv(ws)) == {"event": "echo", "data": {"a": 1}}
        assert orjson.loads(await recv(ws)) == {"ack": 4, "data": {"a": 1}}
        await ws.send('{"event":"ask","data":5,"ack":9}')
        question = orjson.loads(await recv(ws))
        assert question["event"] == "question" and question["data"] == 5
        await ws.send(orjson.dumps({"ack": question["ack"], "data": "yes"}).decode())
        assert orjson.loads(await recv(ws)) == {"event": "answer", "data": "yes"}
        assert orjson.loads(await recv(ws)) == {"ack": 9, "data": "yes"}
        await ws.send('{"event":"no_route"}')
        await ws.send('{"event":"echo","data":"after"}')
        assert orjson.loads(await recv(ws)) == {"event": "echo", "data": "after"}
    async with connect(ws_url(server, query="token=nope"), open_timeout=scaled(5)) as ws:
        assert await closed_with(ws) == (1008, "connect rejected")
    async with connect(ws_url(server), open_timeout=scaled(5)) as ws:
        await recv(ws)
        await ws.send('["echo","not an object"]')
        assert await closed_with(ws) == (1002, 'expected an object {"event": ..., "data": ...}')


# -- the raw parser ----------------------------------------------------------------------------------------


def raw_router() -> Router:
    r = Router()

    @r.on("message")
    def message(socket: Socket, data: str | bytes) -> None:
        if isinstance(data, bytes):
            socket.emit("message", data[::-1])
        else:
            socket.emit("message", f"got:{data}")
            socket.emit("message", {"as": "json"})

    return r


async def test_raw_parser_on_bare_endpoint(server_factory: ServerFactory) -> None:
    server = await server_factory(raw_router(), websocket={"parser": "raw"})
    async with connect(ws_url(server, query=""), open_timeout=scaled(5)) as ws:
        await ws.send('42["not","parsed"]')
        assert await recv(ws) == 'got:42["not","parsed"]'
        assert await recv(ws) == '{"as":"json"}'
        await ws.send(b"\x01\x02")
        assert await recv(ws) == b"\x02\x01"


async def test_raw_parser_is_a_plain_engineio_server(server_factory: ServerFactory) -> None:
    # python-engineio's client: no Socket.IO on top, each message is the "message" event.
    server = await server_factory(raw_router(), websocket={"parser": "raw"})
    for transports in (["websocket"], ["polling"]):
        client = engineio.AsyncClient(request_timeout=scaled(5))
        got: asyncio.Queue[Any] = asyncio.Queue()  # python-engineio decodes JSON-looking text
        client.on("message", got.put_nowait)
        await client.connect(server.url, transports=transports, engineio_path="socket.io")
        try:
            await client.send("hello")
            assert await asyncio.wait_for(got.get(), scaled(5)) == "got:hello"
            # python-engineio reads text that looks like JSON as JSON
            assert await asyncio.wait_for(got.get(), scaled(5)) == {"as": "json"}
            await client.send(b"\x00\xff")
            assert await asyncio.wait_for(got.get(), scaled(5)) == b"\xff\x00"
        finally:
            await client.disconnect()


@pytest.mark.parametrize("parser", ["json", "raw"])
async def test_parsers_reject_at_connect_hooks(server_factory: ServerFactory, parser: str) -> None:
    # connect_hooks run for every parser; a refusal on /ws closes with 1008 and the reason.
    server = await server_factory(raw_router(), websocket={"parser": parser})

    def hook(socket: Socket, auth: Any) -> None:
        if auth.get("key") != "k":
            raise Reject({"message": "no key"})

    server.connect_hooks.append(hook)
    async with connect(ws_url(server, query="key=bad"), open_timeout=scaled(5)) as ws:
        assert await closed_with(ws) == (1008, "connect rejected")
    async with connect(ws_url(server, query="key=k"), open_timeout=scaled(5)) as ws:
        if parser == "raw":
            await ws.send("hi")
            assert await recv(ws) == "got:hi"
        else:
            await ws.send('{"event":"message","data":"hi"}')
            assert orjson.loads(await recv(ws)) == {"event": "message", "data": "got:hi"}
    assert server.state.rejected == 1


async def test_server_ack_timeout(server: Server, rec: Recorder) -> None:
    async with await open_bare(server) as ws:
        await ws.send('421["ask","will you?",0.2]')
        head, question = await recv_sio(ws)
        assert question == ["question", "will you?"]
        # the page never answers: the handler's await raises AckTimeout, which is logged; nothing else
        await wait_until(lambda: server.state.handler_errors == 1, what="ack timeout")
        assert rec.ack_failures == ["AckTimeout"]
        await ws.send(f'43{head[2:]}["too late"]')  # an answer after the timeout is ignored
        await ws.send('422["echo","fine"]')
        assert await recv_sio(ws) == ("42", ["echo", "fine"])
        assert await recv_sio(ws) == ("432", ["fine"])


async def test_client_leaves_while_server_awaits_its_ack(server: Server, rec: Recorder) -> None:
    ws = await open_bare(server)
    await ws.send('42["ask","will you?"]')
    assert (await recv_sio(ws))[1] == ["question", "will you?"]
    await ws.close()
    # the handler learns that the client is gone: ConnectionClosed, which it may catch
    await wait_until(lambda: rec.ack_failures != [], what="ask to fail")
    assert rec.ack_failures == ["ConnectionClosed"]


async def test_unknown_event_is_ignored_with_a_debug_log(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = await server_factory(server={"debug": True})
    with caplog.at_level(logging.DEBUG, logger="tether.server"):
        async with await open_bare(server) as ws:
            await ws.send('42["no_such_event",1]')
            await ws.send('421["echo","next"]')
            assert await recv_sio(ws) == ("42", ["echo", "next"])
    assert any("no route for 'no_such_event'" in r.getMessage() for r in caplog.records)
    assert server.state.handler_errors == 0
