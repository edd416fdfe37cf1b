"""One cluster of a Tether node and a Node.js Socket.IO server on ``@socket.io/redis-adapter``: emits,
``fetchSockets``, ``socketsJoin`` and ``allRooms`` work in both directions, so the wire format is the same."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tests.helpers import wait_until
from tests.redis_fixtures import (
    JS_DIR,
    Client,
    RedisServer,
    TetherNode,
    clients,
    js_modules_ready,
    node_bin,
    node_config,
    scaled,
    settle,
)


@contextlib.contextmanager
def node_js_server(redis_url: str, prefix: str) -> Iterator[str]:
    js_modules_ready("socket.io", "@socket.io/redis-adapter", "redis")
    proc = subprocess.Popen(
        [node_bin(), str(JS_DIR / "node_server.mjs"), redis_url, prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=JS_DIR,
    )
    try:
        assert proc.stdout is not None
        port = None
        deadline = time.monotonic() + scaled(20)
        lines = []
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.match(r"listening (\d+)", line)
            if m:
                port = int(m.group(1))
        if port is None:
            pytest.fail("the Node.js Socket.IO server did not start:\n" + "".join(lines))
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def mixed(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """(tether url, node url): one Tether node and one Node.js server on a prefix of their own."""
    prefix = "interop"  # apart from the session's two Tether nodes on the same Redis
    with (
        tempfile.TemporaryDirectory(prefix="tether-mixed-") as folder,
        node_js_server(redis_server.url, prefix) as node_url,
    ):
        tether = TetherNode("mixed", node_config(redis_server.url, prefix=prefix), Path(folder))
        tether.start()
        try:
            yield tether.url, node_url
        finally:
            tether.stop()


def got(c: Client, event: str) -> list[object]:
    return c.events.get(event, [])


async def test_emits_cross_between_node_and_tether_once(mixed: tuple[str, str]) -> None:
    tether_url, node_url = mixed
    async with clients(tether_url, tether_url, node_url, node_url) as (t1, t2, n1, n2):
        for c in (t2, n2):
            assert await c.call("join", "interop-room") == "ok"
        # Node.js server -> Tether clients
        await n1.call("emit_to", {"room": "interop-room", "event": "from-node", "args": [{"x": 1}]})
        # Tether -> Node.js clients
        await t1.call("emit_to", {"event": "from-tether", "args": ["hi"], "room": "interop-room"})
        await wait_until(lambda: got(t2, "from-node") and got(n2, "from-node"), what="the Node.js emit")
        await wait_until(lambda: got(t2, "from-tether") and got(n2, "from-tether"), what="the Tether emit")
        await settle()
        assert got(t2, "from-node") == [{"x": 1}] and got(n2, "from-node") == [{"x": 1}]
        assert got(t2, "from-tether") == ["hi"] and got(n2, "from-tether") == ["hi"]
        assert got(t1, "from-node") == [] and got(n1, "from-tether") == []


async def test_cluster_questions_are_answered_both_ways(mixed: tuple[str, str]) -> None:
    tether_url, node_url = mixed
    async with clients(tether_url, node_url) as (t, n):
        await t.call("join", "q-room")
        await n.call("join", "q-room")
        # Node.js asks: Tether answers REMOTE_FETCH and counts as a server (PUBSUB NUMSUB).
        assert await n.call("server_count") == 2
        fetched = await n.call("fetch", "q-room")
        assert sorted(s["id"] for s in fetched) == sorted([t.sid, n.sid])
        assert "q-room" in next(s for s in fetched if s["id"] == t.sid)["rooms"]
        # Tether asks: the Node.js server answers.
        fetched = await t.call("fetch", "q-room")
        assert sorted(s["id"] for s in fetched) == sorted([t.sid, n.sid])
        assert await t.call("count", "q-room") == 2
        assert "q-room" in await t.call("all_rooms")
        assert "q-room" in await n.call("all_rooms")
        # socketsJoin from Node.js moves a Tether socket, and the other way round.
        await n.call("sockets_join", "q-room", "joined-by-node")
        await t.call("sockets_join", "q-room", "joined-by-tether")
        deadline = time.monotonic() + scaled(5)
        while time.monotonic() < deadline:
            t_rooms, n_rooms = await t.call("rooms"), await n.call("rooms")
            if {"joined-by-node", "joined-by-tether"} <= set(t_rooms) & set(n_rooms):
                break
            await asyncio.sleep(0.02)
        assert {"joined-by-node", "joined-by-tether"} <= set(t_rooms)
        assert {"joined-by-node", "joined-by-tether"} <= set(n_rooms)


async def test_node_emit_with_ack_collects_acks_from_tether_clients(mixed: tuple[str, str]) -> None:
    """BROADCAST requests: Tether tells how many acks to expect, then forwards each client's answer."""
    tether_url, node_url = mixed
    async with clients(tether_url, tether_url, node_url) as (t1, t2, n):
        for c in (t1, t2, n):
            await c.call("join", "ack-room")
        answers = await n.call("emit_with_ack", "ack-room", "ping-ack")
        assert answers == ["ack-ping-ack"] * 3, answers
        assert got(t1, "ping-ack") == ["please ack"] and got(t2, "ping-ack") == ["please ack"]


async def test_tether_emit_with_acks_collects_answers_from_node_clients(mixed: tuple[str, str]) -> None:
    """The other way: Tether sends the BROADCAST request; the Node.js server counts its clients and forwards
    each answer (responses 8 and 9), and a silent room on the Node.js side counts as missing after the
    timeout."""
    tether_url, node_url = mixed
    async with clients(tether_url, tether_url, node_url, node_url) as (t1, t2, n1, n2):
        for c in (t1, t2, n1, n2):
            await c.call("join", "tether-asks")
        answers = await t1.call("ask_room", "tether-asks", scaled(5))
        assert answers == {"answers": ["ack-question"] * 4, "expected": 4, "missing": 0, "timed_out": False}
        assert got(n1, "question") == ["q?"] and got(t2, "question") == ["q?"]
        # A client of the Node.js server that does not answer: counted by its server, missing after the
        # timeout. (python-socketio's client always acks, so this one speaks Socket.IO over a raw WebSocket.)
        ws_url = node_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(ws_url) as ws:
            assert str(await asyncio.wait_for(ws.recv(), scaled(5))).startswith("0{")
            await ws.send("40")
            assert str(await asyncio.wait_for(ws.recv(), scaled(5))).startswith("40{")
            await ws.send('421["join","tether-asks"]')
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == '431["ok"]'
            answers = await t1.call("ask_room", "tether-asks", 1.0)
            question = await asyncio.wait_for(ws.recv(), scaled(5))
            assert str(question).startswith("42") and '"question","q?"' in str(question)  # asked, ack id
        assert answers["answers"] == ["ack-question"] * 4 and answers["expected"] == 5
        assert answers["missing"] == 1 and answers["timed_out"] is True
