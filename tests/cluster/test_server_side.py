"""Server-side events (tether.cluster.server_side) on the Redis Streams adapter, in node's ClusterAdapter
format (SERVER_SIDE_EMIT 9 / SERVER_SIDE_EMIT_RESPONSE 10 on the pub/sub channels): between Tether nodes,
and between Tether nodes and node's socket.io 4.8 on @socket.io/redis-streams-adapter, both ways. Also
what the stream and the channels may carry that Tether does not read: logged, skipped, nothing stops.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from tests.cluster.test_node_interop import node_js_server
from tests.cluster.test_streams import NodeServer
from tests.conftest import make_config
from tests.helpers import scaled, wait_until, wait_until_async
from tests.redis_fixtures import RedisServer, clients
from tether import ConfigError, Router, Server, Socket, TetherError, run_server
from tether.cluster.streams import RedisStreamsAdapter


def routes(name: str) -> tuple[Router, list[list[Any]]]:
    """A router whose server-side handlers record what they get (the list returned) and answer
    ``<name>:<arg>``."""
    r = Router()
    seen: list[list[Any]] = []

    @r.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    @r.on_server_side("hello")
    async def hello(*args: Any) -> None:
        seen.append(["hello", *args])

    @r.on_server_side("ping")
    def ping(arg: Any) -> str:  # a `def` handler: it runs in the server's thread pool
        seen.append(["ping", arg])
        return f"{name}:{arg}"

    @r.on_server_side("boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @r.on_server_side("ping", namespace="/chat")  # a namespace with no socket route: listened to anyway
    async def chat_ping(arg: Any) -> str:
        return f"{name}/chat:{arg}"

    return r, seen


async def tether_node(redis_url: str, stream: str, router: Router, **redis: Any) -> Server:
    config = make_config(
        room={"driver": "redis-streams"}, redis={"url": redis_url, "prefix": stream, **redis}
    )
    return await run_server(config, router)


async def node_seen(node: NodeServer, expected: list[Any]) -> None:
    """Wait (bounded) until node's server-side handlers got ``expected``."""
    await wait_until_async(lambda: node.command("seen"), expected)


async def test_server_side_events_between_tether_nodes(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    stream = "server-side-tether"
    ra, seen_a = routes("a")
    rb, seen_b = routes("b")
    a = await tether_node(redis_server.url, stream, ra)
    b: Server | None = None
    try:
        # Alone: no other node to wait for (node: ``serverCount() - 1 <= 0`` answers ``[]`` at once).
        started = time.monotonic()
        alone = await a.server_side_emit_with_ack("ping", "t")
        assert list(alone) == [] and alone.expected == 0 and not alone.timed_out
        assert time.monotonic() - started < scaled(1)
        b = await tether_node(redis_server.url, stream, rb)
        # Without acks: B's handler gets the arguments (bytes too: msgpack); A's own is not called.
        await a.server_side_emit("hello", 1, {"k": b"\x00\x01"})
        await wait_until(lambda: seen_b == [["hello", 1, {"k": b"\x00\x01"}]], what="B's handler")
        # With acks: one answer per other node, the handler's return value.
        answers = await a.server_side_emit_with_ack("ping", "t")
        assert list(answers) == ["b:t"] and answers.expected == 1 and answers.missing == 0
        assert not answers.timed_out and seen_a == []
        assert list(await b.server_side_emit_with_ack("ping", "c", namespace="/chat")) == ["a/chat:c"]
        # No handler, or a handler that raises: no answer (as node), the sender waits its timeout.
        timeout = scaled(0.3)
        for event in ("nobody", "boom"):
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, "tether.cluster"):
                answers = await a.server_side_emit_with_ack(event, timeout=timeout)
            assert time.monotonic() - started >= timeout
            assert list(answers) == [] and answers.timed_out and answers.missing == 1
        assert "server-side handler for 'boom' failed" in caplog.text
        assert "0 of 1 peers answered within" in caplog.text
        # node's reserved names are refused, as node's serverSideEmit throws.
        with pytest.raises(TetherError):
            a.server_side_emit("connection")
        with pytest.raises(ConfigError):
            Router().on_server_side("new_namespace", lambda: None)
    finally:
        await a.shutdown(timeout=scaled(2))
        if b is not None:
            await b.shutdown(timeout=scaled(2))


async def test_server_side_events_between_tether_and_node_both_ways(redis_server: RedisServer) -> None:
    """Two Tether nodes and one node server on one stream: each side's events reach the others' handlers,
    and each asker waits for the other two (``PUBSUB NUMSUB`` of the namespace's channel, less itself)."""
    stream = "server-side-mixed"
    ra, seen_a = routes("a")
    rb, seen_b = routes("b")
    a = await tether_node(redis_server.url, stream, ra)
    b = await tether_node(redis_server.url, stream, rb)
    node = await NodeServer(redis_server.url, stream).start()
    try:
        await wait_until_async(lambda: node.command("count"), 3)  # node subscribes after it listens
        # Tether -> node (and the other Tether node).
        await a.server_side_emit("hello", "from-a", 2)
        await node_seen(node, [["hello", "from-a", 2]])
        await wait_until(lambda: seen_b == [["hello", "from-a", 2]], what="B's handler")
        answers = await a.server_side_emit_with_ack("ping", "t")
        assert sorted(answers) == ["b:t", "node:t"] and answers.expected == 2 and not answers.timed_out
        # node -> Tether: its serverSideEmit reaches both Tether nodes; its WithAck gets both answers.
        assert await node.command("sse hello x") is True
        await wait_until(lambda: ["hello", "x"] in seen_a and ["hello", "x"] in seen_b, what="node's event")
        assert sorted(await node.command("sseack ping y")) == ["a:y", "b:y"]
        assert ["ping", "y"] in seen_a and ["ping", "y"] in seen_b
    finally:
        await node.close()
        await a.shutdown(timeout=scaled(2))
        await b.shutdown(timeout=scaled(2))


async def test_sharded_pubsub_with_node(redis_server: RedisServer) -> None:
    """``[redis] sharded_pubsub`` and node's ``useShardedPubSub``: questions and server-side events through
    SSUBSCRIBE/SPUBLISH (nobody on the plain channels), both ways."""
    stream = "server-side-sharded"
    ra, seen_a = routes("a")
    a = await tether_node(redis_server.url, stream, ra, sharded_pubsub=True)
    node = await NodeServer(redis_server.url, stream, sharded=True).start()
    try:
        async with aioredis.Redis.from_url(redis_server.url) as r:

            async def shard_subscribers() -> int:
                return int((await r.pubsub_shardnumsub(f"{stream}#/#"))[0][1])

            await wait_until_async(shard_subscribers, 2)  # node subscribes after it listens
            assert (await r.pubsub_numsub(f"{stream}#/#"))[0][1] == 0
        assert await a.adapter.server_count() == 2 and await node.command("count") == 2
        async with clients(a.url) as (ours,):
            theirs = await node.command("client r")
            assert {s.id for s in await a.of("/").fetch_sockets()} == {ours.sid, theirs}
            assert {s["id"] for s in await node.command("fetch r")} == {theirs}
            assert {s["id"] for s in await node.command(f"fetch {ours.sid}")} == {ours.sid}
        answers = await a.server_side_emit_with_ack("ping", "t")
        assert list(answers) == ["node:t"] and not answers.timed_out
        assert await node.command("sseack ping y") == ["a:y"] and ["ping", "y"] in seen_a
    finally:
        await node.close()
        await a.shutdown(timeout=scaled(2))


async def test_what_tether_does_not_read_is_logged_and_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed SERVER_SIDE_EMIT messages on the channels, and stream entries of unknown types, bad
    data or no namespace: a log line each (once per unknown type), never a stop; the nodes still serve."""
    stream = "server-side-garbage"
    ra, _seen_a = routes("a")
    rb, seen_b = routes("b")
    a = await tether_node(redis_server.url, stream, ra)
    b = await tether_node(redis_server.url, stream, rb)
    adapter = b.adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    bad_messages = [
        {"uid": "x", "nsp": "/", "type": 9, "data": {"packet": "ping"}},
        {"uid": "x", "nsp": "/", "type": 9, "data": {"packet": []}},
        {"uid": "x", "nsp": "/", "type": 9, "data": {"packet": [5, "z"]}},
        {"uid": "x", "nsp": "/", "type": 9, "data": {"packet": ["ping", "z"], "requestId": 7}},
    ]
    entries = [
        {"uid": "x", "nsp": "/", "type": "abc", "data": "{}"},  # not a number
        {"uid": "x", "nsp": "/", "type": "3", "data": "{not json"},
        {"uid": "x", "nsp": "/", "type": "3", "data": '{"packet": "x"}'},
        {"uid": "x", "nsp": "/", "type": "99", "data": "{}"},  # a type of some later version
        {"uid": "x", "nsp": "/", "type": "99", "data": "{}"},  # said once per node (two nodes: twice)
        {"uid": "x", "nsp": "/", "type": "2"},  # a heartbeat (node's ClusterAdapterWithHeartbeat)
        {"uid": "x", "type": "3", "data": "{}"},  # no namespace: skipped, as node does
    ]
    try:
        async with aioredis.Redis.from_url(redis_server.url) as r, clients(b.url) as (c,):
            assert await c.call("join", "r") == "ok"
            errors = adapter.counters["errors"]
            with caplog.at_level(logging.WARNING, "tether.cluster"):
                for message in bad_messages:
                    await r.publish(f"{stream}#/#", msgpack.packb(message))
                for fields in entries:
                    await r.xadd(stream, fields)  # type: ignore[arg-type]
                await wait_until(
                    lambda: adapter.counters["errors"] >= errors + len(bad_messages) + 3,
                    what="errors counted",
                )
                a.to("r").emit("after", 1)  # the reader goes on
                await wait_until(lambda: c.events["after"] == [1], what="the emit after the garbage")
            assert seen_b == []
            assert caplog.text.count("pub/sub message dropped: ClusterError") >= len(bad_messages)
            assert "not understood" in caplog.text
            assert caplog.text.count("of type 99 skipped") == 2 and "of type 2 skipped" in caplog.text
            # And server-side events still go both ways.
            assert list(await a.server_side_emit_with_ack("ping", "ok")) == ["b:ok"]
    finally:
        await a.shutdown(timeout=scaled(2))
        await b.shutdown(timeout=scaled(2))


async def test_server_side_events_on_the_pubsub_driver_with_node(redis_server: RedisServer) -> None:
    """``driver = "redis"``: node's ``@socket.io/redis-adapter`` format (request type 6, its answers on the
    response channel), between two Tether nodes and node's socket.io 4.8, both ways; bytes between Tether
    nodes (msgpack)."""
    prefix = "server-side-pubsub"
    ra, seen_a = routes("a")
    rb, seen_b = routes("b")
    config = make_config(room={"driver": "redis"}, redis={"url": redis_server.url, "prefix": prefix})
    a = await run_server(config, ra)
    b = await run_server(config, rb)
    try:
        with node_js_server(redis_server.url, prefix) as node_url:
            async with clients(node_url) as (n,):
                await wait_until_async(lambda: n.call("server_count"), 3)
                await a.server_side_emit("hello", "from-a", {"k": b"\x00"})
                await wait_until(lambda: seen_b == [["hello", "from-a", {"k": b"\x00"}]], what="B's handler")
                answers = await a.server_side_emit_with_ack("ping", "t")
                assert (
                    sorted(answers) == ["b:t", "node:t"] and answers.expected == 2 and not answers.timed_out
                )
                assert ["ping", "t"] in await n.call("sse_seen")
                # node -> Tether
                assert await n.call("sse", "hello", "x") is True
                await wait_until(lambda: ["hello", "x"] in seen_a and ["hello", "x"] in seen_b, what="node's")
                assert sorted(await n.call("sse_ack", "ping", "y")) == ["a:y", "b:y"]
    finally:
        await a.shutdown(timeout=scaled(2))
        await b.shutdown(timeout=scaled(2))


async def test_one_process_has_nobody_to_tell(redis_server: RedisServer) -> None:
    alone = await run_server(make_config(), routes("m")[0])
    try:
        answers = await alone.server_side_emit_with_ack("ping", 1)
        assert list(answers) == [] and answers.expected == 0 and not answers.timed_out
        await alone.server_side_emit("hello")
    finally:
        await alone.shutdown(timeout=scaled(2))
