"""Connection hand-off between two real servers in one process (the fd travels through a Unix socket)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import websockets

from tests.helpers import scaled
from tether import Config, Router, Server, run_server
from tether.manager.handoff import Handoff, owner_of, receive_connection, send_connection


def test_owner_of() -> None:
    assert owner_of("3.AbCd") == 3
    assert owner_of("12.x") == 12
    assert owner_of("AbCd") is None
    assert owner_of(".x") is None
    assert owner_of("x3.y") is None
    assert owner_of("1234567890.y") is None


class Pair:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.servers: dict[int, Server] = {}
        self.handoffs: dict[int, Handoff] = {}

    def path(self, wid: int) -> str:
        return str(self.folder / f"h.w{wid}")

    async def add(self, wid: int) -> Server:
        router = Router()

        async def echo(socket: object, data: object) -> object:
            return data

        router.on("echo", echo)
        server = await run_server(Config().replace(server={"port": 0}), router)
        server.sid_prefix = f"{wid}."
        handoff = Handoff(server, wid, self.path)
        server.foreign_sid_handler = handoff
        await handoff.serve(self.path(wid))
        self.servers[wid] = server
        self.handoffs[wid] = handoff
        for h in self.handoffs.values():
            h.live = set(self.handoffs)
        return server


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    p = Pair(tmp_path)
    await p.add(1)
    await p.add(2)
    yield p
    for wid, server in p.servers.items():
        await p.handoffs[wid].close()
        await server.shutdown(timeout=1)


def _url(server: Server, sid: str | None = None) -> str:
    return f"{server.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")


async def test_polling_requests_on_the_wrong_server_are_handed_over(pair: Pair) -> None:
    one, two = pair.servers[1], pair.servers[2]
    timeout = aiohttp.ClientTimeout(total=scaled(5))
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
    ) as http:
        async with http.get(_url(one)) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        assert sid.startswith("1.")
        async with http.post(_url(two, sid), data="40") as resp:  # CONNECT, sent to the wrong server
            assert resp.status == 200 and await resp.text() == "ok"
        async with http.post(_url(two, sid), data='421["echo",{"big":"' + "x" * 200_000 + '"}]') as resp:
            assert await resp.text() == "ok"  # a body larger than one socket buffer travels too
        received = ""
        while '431[{"big"' not in received:
            async with http.get(_url(two, sid), headers={"Origin": two.url}) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == two.url
                received += await resp.text()
        assert received.startswith("40{")
    assert pair.handoffs[2].sent >= 3 and pair.handoffs[1].received == pair.handoffs[2].sent
    assert pair.handoffs[1].sent == 0


async def test_keep_alive_connection_stays_with_the_owner_after_one_hand_off(pair: Pair) -> None:
    one, two = pair.servers[1], pair.servers[2]
    async with aiohttp.ClientSession() as http, http.get(_url(one)) as resp:
        sid = json.loads((await resp.text())[1:])["sid"]
    # One TCP connection to server 2, several requests: only the first needs a hand-off.
    reader, writer = await asyncio.open_connection("127.0.0.1", two.port)
    path = _url(two, sid).split(str(two.port), 1)[1]
    for body in ("40", '421["echo",1]', '422["echo",2]'):
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        length = int(
            next(h for h in head.decode().split("\r\n") if h.lower().startswith("content-length")).split(":")[
                1
            ]
        )
        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(length) == b"ok"
    writer.close()
    assert pair.handoffs[2].sent == 1


async def test_websocket_upgrade_on_the_wrong_server(pair: Pair) -> None:
    one, two = pair.servers[1], pair.servers[2]
    async with aiohttp.ClientSession() as http:
        async with http.get(_url(one)) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        async with http.post(_url(one, sid), data="40") as resp:
            assert await resp.text() == "ok"
        async with http.get(_url(one, sid)) as resp:
            assert (await resp.text()).startswith("40")
        ws_url = f"ws://127.0.0.1:{two.port}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with websockets.connect(ws_url) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == "3probe"
            await ws.send("5")
            await ws.send('421["echo","over ws"]')
            reply = await asyncio.wait_for(ws.recv(), scaled(5))
            if reply == "6":  # the noop that released the held GET may come over the WebSocket
                reply = await asyncio.wait_for(ws.recv(), scaled(5))
            assert reply == '431["over ws"]'
    assert pair.handoffs[2].sent == 1


async def test_unknown_or_dead_owner_answers_session_unknown(pair: Pair) -> None:
    two = pair.servers[2]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(_url(two, "7.nosuchworker")) as resp:  # not a live worker: no hand-off tried
            assert resp.status == 400 and (await resp.json())["message"] == "Session ID unknown"
        async with http.get(_url(two, "2.nosuchsession")) as resp:  # our own prefix
            assert resp.status == 400
        assert pair.handoffs[2].sent == pair.handoffs[2].failed == 0
        await pair.handoffs[1].close()  # worker 1 is exiting: its listener is gone, "live" not updated yet
        async with http.get(_url(two, "1.gone")) as resp:
            assert resp.status == 400 and (await resp.json())["message"] == "Session ID unknown"
    assert pair.handoffs[2].failed == 1


async def _post_head(server: Server, sid: str, content_type: str, length: int) -> tuple[int, bytes]:
    """POST's head alone, announcing ``length`` bytes: the status and body of the answer (a body over
    max_payload is answered from the head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = await asyncio.wait_for(reader.read(), scaled(5))
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_body_over_max_payload_on_the_wrong_server(pair: Pair) -> None:
    """The owner answers as for a request made to it (tests/server/test_polling_content_type_vs_node.py
    compares that with node): the head is handed over, the body was never read."""
    one, two = pair.servers[1], pair.servers[2]
    over = one.config.websocket.max_payload + 1
    async with aiohttp.ClientSession() as http:
        for content_type, status in (("application/octet-stream", 400), ("text/plain;charset=UTF-8", 413)):
            async with http.get(_url(one)) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            assert (await _post_head(two, sid, content_type, over))[0] == status, content_type
            assert sid not in one.clients  # ended, as engine.io ends it
    unknown = b'{"code":1,"message":"Session ID unknown"}'
    assert await _post_head(two, "1.nosuchsession", "text/plain", over) == (400, unknown)  # answered by 1
    assert await _post_head(two, "7.nosuchworker", "text/plain", over) == (400, unknown)  # no hand-off
    assert pair.handoffs[2].sent == 3 and pair.handoffs[1].received == 3


async def test_send_and_receive_connection_primitives(tmp_path: Path) -> None:
    path = str(tmp_path / "l.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    listener.setblocking(False)
    a, b = socket.socketpair()
    loop = asyncio.get_running_loop()
    data = os.urandom(300_000)
    sender = asyncio.create_task(send_connection(path, a.fileno(), data))
    conn, _ = await loop.sock_accept(listener)
    fd, got = await receive_connection(conn)
    await sender
    assert got == data
    moved = socket.socket(fileno=fd)
    moved.sendall(b"through the copy")
    assert b.recv(100) == b"through the copy"
    for s in (moved, a, b, conn, listener):
        s.close()

    # A peer that sends no descriptor is refused.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path2 = str(tmp_path / "m.sock")
    listener.bind(path2)
    listener.listen()
    listener.setblocking(False)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path2)
    client.sendall(b"\x00\x00\x00\x01x")
    conn, _ = await loop.sock_accept(listener)
    with pytest.raises(ValueError, match="without a file descriptor"):
        await receive_connection(conn)
    for s in (client, conn, listener):
        s.close()
