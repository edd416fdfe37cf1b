"""The Redis Streams adapter (tether.cluster.streams): nodes on one real redis-server, connection state
recovery across them, and interop with node's ``@socket.io/redis-streams-adapter`` in both directions.

The official socket.io-client talks to a node through :class:`tests.helpers.CutProxy`; the test cuts the
connection and points the proxy at the other node, so the client comes back there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis

from tests.conftest import make_config
from tests.helpers import CutProxy, scaled, wait_until
from tests.recovery_support import JS_DIR, NodeClient, gaps_and_duplicates
from tests.redis_fixtures import RedisServer, clients, js_modules_ready, node_bin, running_redis
from tether import Router, Server, Socket, run_server
from tether.cluster.stream_entries import encode_session
from tether.cluster.streams import RedisStreamsAdapter, decode_data, encode_data, parse_id
from tether.recovery import SavedSession

COUNT = 1000


def router() -> Router:
    r = Router()

    @r.on("join")
    def join(socket: Socket, room: str) -> str:
        socket.join(room)
        return "ok"

    @r.on("login")
    def login(socket: Socket, user: str) -> str:
        socket.login_using(user)
        return "ok"

    @r.on("whoami")
    def whoami(socket: Socket) -> dict[str, Any]:
        return {"server": "tether", "id": socket.sid, "recovered": socket.recovered}

    return r


async def tether_node(redis_url: str, stream: str, **redis: Any) -> Server:
    config = make_config(
        room={"driver": "redis-streams"},
        redis={"url": redis_url, "prefix": stream, **redis},
        recovery={"max_disconnection_duration": 120.0},
    )
    return await run_server(config, router())


@pytest.fixture
async def nodes(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Server, Server, str]]:
    stream = f"socket.io-{request.node.name}"[:60]
    a = await tether_node(redis_server.url, stream)
    b = await tether_node(redis_server.url, stream)
    try:
        yield a, b, stream
    finally:
        await a.shutdown(timeout=scaled(2))
        await b.shutdown(timeout=scaled(2))


async def session_stored(redis_url: str, sid: str) -> dict[str, Any]:
    """The session kept in Redis for socket ``sid`` (node's format), waiting up to 5 s (scaled) for it:
    the node it left sees the cut and stores it; a client back before that connects as new."""
    async with aioredis.Redis.from_url(redis_url) as r:
        for _ in range(int(scaled(5) / 0.05)):
            for key in await r.keys("sio:session:*"):
                raw = await r.get(key)
                body = msgpack.unpackb(base64.b64decode(raw), raw=False) if raw else {}
                if body.get("sid") == sid:
                    return {"key": key.decode(), "body": body, "ttl": await r.pttl(key)}
            await asyncio.sleep(0.05)
    raise AssertionError(f"no session stored for {sid}")


def check(done: dict[str, Any], count: int = COUNT) -> None:
    missing, duplicates = gaps_and_duplicates(done["received"], count)
    assert (missing, duplicates) == ([], []), f"missing {missing[:20]}, duplicates {duplicates[:20]}"
    offsets = [parse_id(o) for o in done["offsetList"]]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets) == count
    assert done["recovered"] is True


def test_wire_helpers() -> None:
    assert decode_data(encode_data({"a": [1, "x"]})) == {"a": [1, "x"]}
    binary = encode_data({"a": [b"\x00\x01"]})
    assert not binary.startswith("{") and decode_data(binary) == {"a": [b"\x00\x01"]}
    assert parse_id("1700000000000-12") == (1700000000000, 12)
    with pytest.raises(ValueError):
        parse_id("12")


async def test_client_back_on_the_other_tether_node(nodes: tuple[Server, Server, str]) -> None:
    a, b, _stream = nodes
    assert isinstance(a.adapter, RedisStreamsAdapter) and a.adapter.sequences_emits
    proxy = await CutProxy("127.0.0.1", a.port).start()
    client = await NodeClient(f"http://127.0.0.1:{proxy.port}", count=COUNT, room="r", whoami=True).start()
    try:
        await client.wait_step("joined")
        for i in range(1, 301):  # half from each node: the stream carries B's to A
            (a if i % 2 else b).to("r").emit("n", i)
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await wait_until(lambda: len(client.steps("joined")) == 1, what="joined")
        proxy.held = True
        proxy.cut()
        proxy.retarget(b.port)
        for i in range(301, 601):
            (a if i % 2 else b).to("r").emit("n", i)
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await session_stored(a.config.redis.url, client.steps("connect")[0]["id"])
        proxy.held = False
        second = await client.wait_step("whoami", 2, timeout=15)
        assert second["server"] == "tether" and second["recovered"] is True
        for i in range(601, COUNT + 1):
            (a if i % 2 else b).to("r").emit("n", i)
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        done = await client.wait_step("done", timeout=30)
    finally:
        await client.close()
        await proxy.close()
    check(done)
    assert done["id"] == client.steps("connect")[0]["id"]
    assert b.get_socket(done["id"]) is None or b.get_socket(done["id"]).recovered  # type: ignore[union-attr]


async def test_forged_offsets_cost_no_redis_round_trip(nodes: tuple[Server, Server, str]) -> None:
    a, _b, _stream = nodes
    adapter = a.adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    for offset in ("12", "x-1", "1-2-3", "9" * 30 + "-1"):
        assert await adapter.restore_session("p" * 30, offset, "/") is None


async def test_recovery_replays_no_volatile_entry(nodes: tuple[Server, Server, str]) -> None:
    """A volatile entry (node's ``io.volatile``) was delivered without an offset: a recovery does not replay
    it (it could send it twice); the entries around it are replayed."""
    a, _b, stream = nodes
    adapter = a.adapter
    assert isinstance(adapter, RedisStreamsAdapter)

    def entry(n: int, flags: dict[str, Any]) -> dict[str, str]:
        packet = {"type": 2, "data": ["n", n], "nsp": "/"}
        return {
            "uid": "node",
            "nsp": "/",
            "type": "3",
            "data": json.dumps({"packet": packet, "opts": {"rooms": ["r"], "except": [], "flags": flags}}),
        }

    session = SavedSession("p" * 20, "s1", "/", ("s1", "r"), {}, None, None, "0-0", time.monotonic())
    async with aioredis.Redis.from_url(a.config.redis.url) as r:
        base = (await r.xadd(stream, entry(0, {}))).decode()
        for n, flags in ((1, {}), (2, {"volatile": True}), (3, {})):
            await r.xadd(stream, entry(n, flags))  # type: ignore[arg-type]
        await r.set("sio:session:" + session.pid, encode_session(session))
    restored = await adapter.restore_session(session.pid, base, "/")
    assert restored is not None
    got = [json.loads(p.decode().lstrip("42")) for p in restored.packets]
    assert [g[1] for g in got] == [1, 3]


class NodeServer:
    """tests/js/node_streams_server.mjs: node socket.io on the redis-streams adapter, driven through stdin."""

    def __init__(
        self, redis_url: str, stream: str = "socket.io", sharded: bool = False, stream_count: int = 1
    ) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.flags = [*(["sharded"] if sharded else []), f"streams={stream_count}"]
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> NodeServer:
        js_modules_ready("socket.io", "@socket.io/redis-streams-adapter", "redis")
        # The stream name is also the channel prefix, as Tether's [redis] prefix is both.
        self.proc = await asyncio.create_subprocess_exec(
            node_bin(),
            str(JS_DIR / "node_streams_server.mjs"),
            self.redis_url,
            self.stream,
            *self.flags,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), scaled(15))
        assert line.startswith(b"listening "), line
        self.port = int(line.split()[1])
        return self

    async def burst(self, room: str, first: int, last: int, volatile: bool = False) -> None:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        cmd = "vburst" if volatile else "burst"
        self.proc.stdin.write(f"{cmd} {room} {first} {last}\n".encode())
        line = await asyncio.wait_for(self.proc.stdout.readline(), scaled(15))
        assert line.strip() == f"{cmd} done {last}".encode(), line

    async def command(self, line: str) -> Any:
        """Send one stdin command; its answer line's JSON (or text) after the command's name."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        name = line.split()[0]
        self.proc.stdin.write(f"{line}\n".encode())
        answer = (await asyncio.wait_for(self.proc.stdout.readline(), scaled(15))).decode().strip()
        assert answer.startswith(f"{name} "), answer
        rest = answer[len(name) + 1 :]
        return rest if name == "client" else json.loads(rest)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), scaled(5))
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def test_interop_with_node_redis_streams_adapter_both_ways(redis_server: RedisServer) -> None:
    """Messages both ways on one stream, and recovery both ways: a client of Tether comes back on node, then
    on Tether again, with every message either of them sent while it was away."""
    stream = "socket.io"  # node's default stream name
    async with aioredis.Redis.from_url(redis_server.url) as r:
        await r.delete(stream)
    tether = await tether_node(redis_server.url, stream)
    node = await NodeServer(redis_server.url, stream).start()
    proxy = await CutProxy("127.0.0.1", tether.port).start()
    client = await NodeClient(f"http://127.0.0.1:{proxy.port}", count=COUNT, room="r", whoami=True).start()
    try:
        await client.wait_step("joined")
        await node.burst("r", 1, 200)  # node -> Tether's client, through the stream
        for i in range(201, 401):
            tether.to("r").emit("n", i)
        await asyncio.sleep(0.3)
        # Cut; the client comes back on node, which restores the session Tether kept in Redis.
        proxy.held = True
        proxy.cut()
        proxy.retarget(node.port)
        adapter = tether.adapter
        assert isinstance(adapter, RedisStreamsAdapter)
        await wait_until(lambda: adapter.counters["published"] >= 200, what="Tether's XADDs")
        for i in range(401, 501):
            tether.to("r").emit("n", i)
        await node.burst("r", 501, 600)
        await session_stored(redis_server.url, client.steps("connect")[0]["id"])
        proxy.held = False
        second = await client.wait_step("whoami", 2, timeout=15)
        assert second == {
            "step": "whoami",
            "n": 2,
            "server": "node",
            "id": client.steps("connect")[0]["id"],
            "recovered": True,
        }
        await node.burst("r", 601, 700)
        # Node's adapter delivers its own emits when XADD answers, not in stream order: had Tether's next
        # entries landed between them, node's client would hold offsets out of order and the recovery on
        # Tether repeat a few packets (a limit of the reference, docs/recovery.md). Let node's XADDs land.
        await asyncio.sleep(scaled(0.3))
        for i in range(701, 801):
            tether.to("r").emit("n", i)  # Tether -> node's client
        await asyncio.sleep(0.3)
        # Cut again; back on Tether, which restores the session node kept in Redis.
        proxy.held = True
        proxy.cut()
        proxy.retarget(tether.port)
        await node.burst("r", 801, 900)
        for i in range(901, 951):
            tether.to("r").emit("n", i)
        await session_stored(redis_server.url, client.steps("connect")[0]["id"])
        proxy.held = False
        third = await client.wait_step("whoami", 3, timeout=15)
        assert third["server"] == "tether" and third["recovered"] is True
        await node.burst("r", 951, COUNT)
        done = await client.wait_step("done", timeout=30)
    finally:
        await client.close()
        await proxy.close()
        await node.close()
        await tether.shutdown(timeout=scaled(2))
    check(done)


async def test_sessions_are_stored_in_node_format(
    nodes: tuple[Server, Server, str], redis_server: RedisServer
) -> None:
    a, _b, _stream = nodes
    proxy = await CutProxy("127.0.0.1", a.port).start()
    client = await NodeClient(f"http://127.0.0.1:{proxy.port}", count=COUNT, room="r").start()
    try:
        first = await client.wait_step("connect")
        await client.wait_step("joined")
        proxy.held = True
        proxy.cut()
        found = await session_stored(redis_server.url, first["id"])
        body, ttl = found["body"], found["ttl"]
        assert body["pid"] == found["key"].removeprefix("sio:session:")
        assert body["sid"] == first["id"] and sorted(body["rooms"]) == sorted([first["id"], "r"])
        assert body["data"] == {} and body["tether"]["base"]
        assert 0 < ttl <= 120_000
    finally:
        await client.close()
        await proxy.close()


# -- cluster-wide questions through pub/sub, in node's ClusterAdapter format ------------------------------


async def test_questions_are_answered_for_the_whole_cluster(nodes: tuple[Server, Server, str]) -> None:
    """fetch_sockets, counts, all_rooms, user_online, server_count and emits with acks, asked on A, see
    B's sockets (B answers through pub/sub)."""
    a, b, _stream = nodes
    async with clients(a.url, b.url, b.url) as (on_a, b1, b2):
        for c in (on_a, b1, b2):
            assert await c.call("join", "r") == "ok"
        assert await b1.call("login", "ann") == "ok"
        await wait_until(lambda: b.get_socket(b1.sid) is not None, what="b1 on B")
        fetched = await a.to("r").fetch_sockets()
        assert sorted(s.id for s in fetched) == sorted([on_a.sid, b1.sid, b2.sid])
        remote = next(s for s in fetched if s.id == b1.sid)
        assert remote.node and "r" in remote.rooms and remote.user_id == "ann"
        assert await a.count("r") == 3 and await b.count("r") == 3
        assert await a.count() == 3
        assert {"r", b1.sid, b2.sid} <= await a.adapter.all_rooms("/")
        assert await a.user_online("ann") is True and await a.user_online("bob") is False
        assert await a.adapter.server_count() == 2
        answers = await a.to("r").timeout(scaled(5)).emit("please", "x")
        assert sorted(answers) == ["ack-please"] * 3 and answers.missing == 0
        # And from B's side: A's socket answers too.
        assert sorted(s.id for s in await b.to("r").fetch_sockets()) == sorted([on_a.sid, b1.sid, b2.sid])
        # set_data reaches the other node through the stream (Tether's own entry type; node ignores it).
        a.adapter.set_data("/", (b2.sid,), {"k": 1})
        await wait_until(lambda: b.get_socket(b2.sid).data == {"k": 1}, what="data set from A")  # type: ignore[union-attr]
        errors = a.adapter.counters["errors"]  # type: ignore[attr-defined]
        a.adapter.set_data("/", (b2.sid,), {"k": object()})  # cannot cross: logged and counted, not raised
        assert a.adapter.counters["errors"] == errors + 1  # type: ignore[attr-defined]
        # Joins, leaves and disconnects travel through the stream (node's entry types 4, 5, 6).
        a.to(b2.sid).sockets_join("extra")
        await wait_until(lambda: "extra" in b.get_socket(b2.sid).rooms, what="the remote join")  # type: ignore[union-attr]
        assert await a.count("extra") == 1
        a.to("extra").sockets_leave("extra")
        await wait_until(lambda: "extra" not in b.get_socket(b2.sid).rooms, what="the remote leave")  # type: ignore[union-attr]
        a.to(b2.sid).disconnect_sockets()
        await wait_until(lambda: b.get_socket(b2.sid) is None, what="the remote disconnect")
        assert await a.count("r") == 2
        # A namespace nobody serves: subscribed on the way, nobody else to ask.
        assert await a.of("/nowhere").fetch_sockets() == []


async def test_a_silent_node_costs_request_timeout_then_partial_answers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber of the public channel that never answers counts as a node: the question waits
    ``[redis] request_timeout`` seconds, not less, and answers with what it has."""
    stream, timeout = "socket.io-silent-node", scaled(0.5)
    a = await tether_node(redis_server.url, stream, request_timeout=timeout)
    silent = aioredis.Redis.from_url(redis_server.url)
    pubsub = silent.pubsub()
    try:
        async with clients(a.url) as (c,):
            started = time.monotonic()
            assert {s.id for s in await a.of("/").fetch_sockets()} == {c.sid}  # no other node: no wait
            assert time.monotonic() - started < timeout
            await pubsub.subscribe(f"{stream}#/#")
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, "tether.cluster"):
                assert {s.id for s in await a.of("/").fetch_sockets()} == {c.sid}
            waited = time.monotonic() - started
            assert timeout <= waited < timeout + scaled(1)
            assert "0 of 1 peers answered" in caplog.text
            message = None
            for _ in range(20):  # subscribe confirmations first (returned as None)
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=scaled(0.2))
                if message is not None:
                    break
            assert message is not None and message["type"] == "message"
            body = msgpack.unpackb(message["data"], raw=False)
            assert body["type"] == 7 and body["nsp"] == "/" and body["uid"] == a.adapter.uid  # type: ignore[attr-defined]
            assert body["data"]["opts"] == {"rooms": [], "except": [], "flags": {}}
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await silent.aclose()
        await a.shutdown(timeout=scaled(2))


async def test_garbage_on_the_channels_is_logged_and_ignored(
    nodes: tuple[Server, Server, str], caplog: pytest.LogCaptureFixture
) -> None:
    a, b, stream = nodes
    adapter = a.adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    errors = adapter.counters["errors"]
    bad = [
        b"\xc1garbage",
        b"{not json",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"uid": "x", "nsp": "/", "type": 7}),  # no data
        msgpack.packb({"uid": "x", "nsp": "/", "type": 7, "data": {"opts": {}}}),  # no requestId
        msgpack.packb({"uid": 5, "nsp": "/", "type": 7, "data": {}}),
        msgpack.packb({"uid": "x", "nsp": "/", "type": 3, "data": {"requestId": "q", "packet": "no"}}),
        msgpack.packb({"uid": "x", "nsp": "/", "type": 8, "data": {"requestId": "nobody", "sockets": "s"}}),
    ]
    ignored = [
        msgpack.packb({"uid": "x", "nsp": "/", "type": 99, "data": {}}),  # unknown type
        msgpack.packb({"uid": "x", "nsp": "/", "type": 9, "data": {"packet": ["ev"]}}),  # serverSideEmit
    ]
    async with aioredis.Redis.from_url(a.config.redis.url) as r, clients(b.url) as (c,):
        with caplog.at_level(logging.WARNING, "tether.cluster"):
            for payload in bad + ignored:
                await r.publish(f"{stream}#/#", payload)
                await r.publish(f"{stream}#/#{adapter.uid}#", payload)
            await wait_until(lambda: adapter.counters["errors"] >= errors + 2 * 7, what="the errors counted")
        assert "pub/sub message dropped" in caplog.text
        # Still answering and asking.
        assert {s.id for s in await a.of("/").fetch_sockets()} == {c.sid}
        assert await a.count() == 1


async def test_questions_between_tether_and_node_both_ways(redis_server: RedisServer) -> None:
    """One Tether node and node's socket.io 4.8 on @socket.io/redis-streams-adapter: each one's
    fetchSockets, counts and emitWithAck see the other's sockets."""
    name = "streams-questions"
    tether = await tether_node(redis_server.url, name)
    node = await NodeServer(redis_server.url, name).start()
    try:
        async with clients(tether.url) as (ours,):
            assert await ours.call("join", "r") == "ok"
            assert await ours.call("login", "ann") == "ok"
            theirs = await node.command("client r")
            # Tether asks node.
            fetched = {s.id: s for s in await tether.to("r").fetch_sockets()}
            assert set(fetched) == {ours.sid, theirs}
            assert fetched[theirs].data == {"server": "node"} and "r" in fetched[theirs].rooms
            assert fetched[theirs].handshake.get("url", "").startswith("/socket.io/")
            assert await tether.count("r") == 2
            assert await tether.adapter.server_count() == 2
            answers = await tether.to("r").timeout(scaled(5)).emit("please", "t")
            assert sorted(answers) == ["ack-please", "node:t"] and answers.missing == 0
            # Node asks Tether.
            found = {s["id"]: s for s in await node.command("fetch r")}
            assert set(found) == {ours.sid, theirs}
            assert sorted(found[ours.sid]["rooms"]) == sorted([ours.sid, "r", "user:ann"])
            assert await node.command("count") == 2
            assert sorted(await node.command("ackemit r please")) == ["ack-please", "node:x"]
            # node's volatile emits get no offset (node adds none either); the others do.
            await node.burst("r", 1, 1)
            await node.burst("r", 2, 2, volatile=True)
            await wait_until(lambda: len(ours.events["n"]) == 2, what="node's emits")
            plain, volatile = ours.events["n"]
            assert plain[0] == 1 and parse_id(plain[1]) and volatile == 2
            # user_online finds node's sockets by room too.
            assert await tether.user_online("ann") is True
            assert await tether.user_online("zed") is False
    finally:
        await node.close()
        await tether.shutdown(timeout=scaled(2))


async def test_questions_answer_locally_while_redis_is_down_and_cluster_wide_once_back() -> None:
    """Own redis-server, killed and started again: the nodes' questions never hang or fail meanwhile, and
    the listeners subscribe again by themselves. (The first answer after the restart may be lost on a
    connection that died with the old server: pub/sub keeps nothing; the asker then waits its timeout.)"""
    with running_redis() as redis:
        a = await tether_node(redis.url, "socket.io-restart", request_timeout=scaled(0.5))
        b = await tether_node(redis.url, "socket.io-restart", request_timeout=scaled(0.5))
        try:
            async with clients(a.url, b.url) as (on_a, on_b):
                assert await a.count() == 2
                redis.kill()
                async with asyncio.timeout(scaled(5)):
                    assert {s.id for s in await a.of("/").fetch_sockets()} == {on_a.sid}
                redis.start()
                deadline = time.monotonic() + scaled(15)
                while await a.count() != 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert {s.id for s in await a.of("/").fetch_sockets()} == {on_a.sid, on_b.sid}
                assert await b.count() == 2
        finally:
            await a.shutdown(timeout=scaled(2))
            await b.shutdown(timeout=scaled(2))
