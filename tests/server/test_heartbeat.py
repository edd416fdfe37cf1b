"""Heartbeats on a real server: the server pings every ping_interval and drops a client whose pong is late.

The sweep that drives the timers runs every 0.5 s, so these tests use short intervals and bounded waits.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerFactory
from tests.helpers import TEXT_BODY, Recorder, scaled, wait_until
from tests.server.clients import TRANSPORTS, SioClient

FAST = {"ping_interval": 0.3, "ping_timeout": 1.0}
"""Pings at every sweep; a pong may be up to a second late before the client is dropped (a loaded CI
machine must not turn a live client into a timeout)."""


async def test_raw_websocket_ping_pong_then_timeout(server_factory: ServerFactory, rec: Recorder) -> None:
    server = await server_factory(websocket=FAST)
    async with connect(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket") as ws:
        opened = orjson.loads(str(await asyncio.wait_for(ws.recv(), scaled(5)))[1:])
        assert (opened["pingInterval"], opened["pingTimeout"]) == (300, 1000)
        await ws.send('40{"token":"secret"}')
        await asyncio.wait_for(ws.recv(), scaled(5))  # 40{sid}
        await asyncio.wait_for(ws.recv(), scaled(5))  # welcome
        pings = 0
        while pings < 3:  # answered pings keep the session
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == "2"
            await ws.send("3")
            pings += 1
        assert server.connection_count == 1
        # now stop answering: the server closes within ping_interval + ping_timeout (+ one sweep)
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            while True:
                assert await asyncio.wait_for(ws.recv(), scaled(5)) == "2"
        assert time.monotonic() - started < scaled(4)  # interval + timeout + one sweep, with room
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (1001, "ping timeout")
    assert rec.reasons() == ["ping timeout"]


async def test_polling_ping_timeout(server_factory: ServerFactory, rec: Recorder) -> None:
    server = await server_factory(websocket=FAST)
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(10))) as http:
        async with http.get(base) as r:
            sid = orjson.loads((await r.read())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=b'40{"token":"secret"}', headers=TEXT_BODY) as r:
            assert r.status == 200
        async with http.get(f"{base}&sid={sid}") as r:
            assert b'42["welcome"' in await r.read()
        async with http.get(f"{base}&sid={sid}") as r:  # held until the ping
            assert await r.read() == b"2"
        async with http.post(f"{base}&sid={sid}", data=b"3", headers=TEXT_BODY) as r:
            assert r.status == 200
        # no more pongs: pings keep coming until the first unanswered one is ping_timeout old, then the
        # held GET gets the Engine.IO close
        for _ in range(10):
            async with http.get(f"{base}&sid={sid}") as r:
                body = await r.read()
            if body != b"2":
                break
        assert body == b"1"
    await wait_until(lambda: rec.reasons() == ["ping timeout"], what="ping timeout")


async def test_real_clients_survive_many_heartbeats(server_factory: ServerFactory) -> None:
    server = await server_factory(websocket=FAST)
    clients = [SioClient(transports) for transports in TRANSPORTS.values()]  # websocket, polling, upgrade
    try:
        for client in clients:
            await client.connect(server.url)
        await asyncio.sleep(scaled(2.5))  # several pings, more than two ping timeouts
        for client in clients:
            assert client.sio.connected
            await client.echo_works()
        assert server.state.disconnects == {}
    finally:
        for client in clients:
            await client.close()
