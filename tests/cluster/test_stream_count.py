"""``[redis] stream_count`` (node's ``streamCount``): each namespace's entries in one of several streams,
named as node names them, read and recovered from there; with node's adapter on the same streams. And
``[redis] session_prefix`` (node's ``sessionKeyPrefix``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.cluster.test_streams import NodeServer, tether_node
from tests.conftest import make_config
from tests.helpers import scaled, wait_until
from tests.redis_fixtures import JS_DIR, RedisServer, clients, js_modules_ready, node_bin
from tether import ConfigError
from tether.cluster.stream_entries import encode_session, js_hash_code, parse_id, stream_name
from tether.cluster.streams import RedisStreamsAdapter
from tether.recovery import SavedSession

NAMESPACES = ["/", "/chat", "/é", "/😀", "/room-1000", "/a-much-longer-namespace-name-that-wraps", ""]


def test_stream_names_are_nodes() -> None:
    """The hash and the name, against node's own ``hashCode`` (JavaScript's ``%`` keeps the sign)."""
    js_modules_ready("@socket.io/redis-streams-adapter")
    script = (
        'const { hashCode } = require("@socket.io/redis-streams-adapter/dist/util");'
        "const names = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(names.map((n) => [hashCode(n),"
        ' ...[1, 2, 3, 7].map((c) => c === 1 ? "s" : "s-" + (hashCode(n) % c))])));'
    )
    out = subprocess.run(
        [node_bin(), "-e", script, json.dumps(NAMESPACES)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    node = json.loads(out.stdout)
    ours = [[js_hash_code(n), *(stream_name("s", n, c) for c in (1, 2, 3, 7))] for n in NAMESPACES]
    assert ours == node
    assert any(row[0] < 0 for row in node)  # a negative hash is among them ("s--1"...)


async def test_two_streams_with_node_both_ways_and_recovery_reads_the_namespaces(
    redis_server: RedisServer,
) -> None:
    name = "stream-count"
    tether = await tether_node(redis_server.url, name, stream_count=2)
    node = await NodeServer(redis_server.url, name, stream_count=2).start()
    adapter = tether.adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    own = adapter.stream_of("/")
    assert own == f"{name}-1"  # hashCode("/") = 47
    try:
        async with clients(tether.url) as (ours,), aioredis.Redis.from_url(redis_server.url) as r:
            assert await ours.call("join", "r") == "ok"
            await node.command("client r")
            await node.burst("r", 1, 3)  # node -> Tether, through <name>-1
            await wait_until(lambda: len(ours.events["n"]) == 3, what="node's emits")
            assert [e[0] for e in ours.events["n"]] == [1, 2, 3]
            for i in range(4, 7):
                tether.to("r").emit("n", i)  # Tether -> node
            for _ in range(int(scaled(5) / 0.05)):
                got = await node.command("got")
                if len(got) == 6:
                    break
                await asyncio.sleep(0.05)
            assert [g[0] for g in got] == [1, 2, 3, 4, 5, 6] and all(parse_id(g[1]) for g in got)
            # Binary both ways: base64 msgpack entries (node's hasBinary), read by the other side.
            assert await node.command("bin r") is True
            await wait_until(lambda: len(ours.events["b"]) == 1, what="node's binary emit")
            assert ours.events["b"][0][0] == {"blob": b"\x00\x01\xff", "text": "t"}
            tether.to("r").emit("b", {"blob": b"\x00\x01\xff", "text": "t"})
            for _ in range(int(scaled(5) / 0.05)):
                got = await node.command("got")
                if len(got) == 8:
                    break
                await asyncio.sleep(0.05)
            assert [g[:3] for g in got[6:]] == [["b", [0, 1, 255], "t"]] * 2
            assert await r.xlen(own) == 8 and await r.exists(name) == 0
            last = (await r.xrevrange(own, count=1))[0][0].decode()
            await wait_until(lambda: adapter.base_offset("/") == last, what="the base offset")
            # A recovery reads the namespace's stream.
            session = SavedSession("q" * 20, "s1", "/", ("s1", "r"), {}, None, None, last, time.monotonic())
            await r.set("sio:session:" + session.pid, encode_session(session))
            tether.to("r").emit("n", 7)
            await wait_until(lambda: len(ours.events["n"]) == 7, what="the 7th")
        restored = await adapter.restore_session(session.pid, last, "/")
        assert restored is not None
        replayed: list[Any] = [json.loads(p.decode()[2:]) for p in restored.packets]
        assert [p[1] for p in replayed] == [7]
    finally:
        await node.close()
        await tether.shutdown(timeout=scaled(2))


async def test_session_prefix_names_the_session_keys(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match="session_prefix"):
        make_config(room={"driver": "redis-streams"}, redis={"session_prefix": ""})
    tether = await tether_node(redis_server.url, "session-prefix", session_prefix="app2:sess:")
    adapter = tether.adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    session = SavedSession("k" * 20, "s9", "/", ("s9",), {"a": 1}, None, None, "0-0", time.monotonic())
    try:
        async with aioredis.Redis.from_url(redis_server.url) as r:
            adapter.persist_session(session)
            for _ in range(int(scaled(5) / 0.05)):
                if await r.exists("app2:sess:" + session.pid):
                    break
                await asyncio.sleep(0.05)
            assert 0 < await r.pttl("app2:sess:" + session.pid) <= 120_000
            assert not await r.exists("sio:session:" + session.pid)
        restored = await adapter.restore_session(session.pid, None, "/")
        assert restored is not None and restored.session.sid == "s9" and restored.session.data == {"a": 1}
    finally:
        await tether.shutdown(timeout=scaled(2))
