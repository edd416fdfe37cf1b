"""Emitters outside any Tether process reach clients of both nodes: Tether's Python emitter (sync and
async) and the npm ``@socket.io/redis-emitter`` run by node."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from typing import Any

import msgpack
import orjson
import pytest
import redis

from tests.helpers import wait_until
from tests.redis_fixtures import (
    JS_DIR,
    Client,
    Cluster,
    RedisServer,
    clients,
    js_modules_ready,
    node_bin,
    scaled,
    settle,
)
from tether.cluster.wire import (
    SESSION_CHANNEL,
    Channels,
    SessionCommand,
    decode_broadcast,
    decode_session_command,
)
from tether.emitter import AsyncEmitter, Emitter, Target
from tether.errors import LocalProtocolError

_ids = itertools.count(1)


def uniq(name: str) -> str:
    return f"{name}-{next(_ids)}-{time.monotonic_ns()}"


def got(c: Client, event: str) -> list[object]:
    return c.events.get(event, [])


# -- the sans-I/O core -----------------------------------------------------------------------------------


def test_target_builds_the_redis_emitter_payload() -> None:
    channel, payload = Target().to("room1").except_("sid9").emit_message("news", ("hi", {"n": 1}))
    assert channel == "socket.io#/#room1#"  # one room: the room's channel
    assert msgpack.unpackb(payload) == [
        "emitter",
        {"type": 2, "data": ["news", "hi", {"n": 1}], "nsp": "/"},
        {"rooms": ["room1"], "except": ["sid9"], "flags": {}},
    ]
    channel, _ = Target(Channels("app")).of("admin").to(["a", "b"]).emit_message("x", ())
    assert channel == "app#/admin#"  # several rooms: the namespace's channel


def test_target_refuses_reserved_events_and_empty_sessions() -> None:
    with pytest.raises(LocalProtocolError):
        Target().emit_message("disconnect", ())
    with pytest.raises(LocalProtocolError):
        Target.session_message("touch", "")


def test_session_messages_are_versioned_json() -> None:
    channel, payload = Target.session_message("end", "s1", "logged out")
    assert channel == SESSION_CHANNEL == "tether#session#"
    assert orjson.loads(payload) == {"v": 1, "type": "end", "session": "s1", "reason": "logged out"}
    command = decode_session_command(payload)
    assert (command.type, command.session, command.reason) == ("end", "s1", "logged out")


def test_chains_are_immutable() -> None:
    base = Emitter(redis.Redis(), "socket.io")
    room = base.to("r")
    assert base.target.rooms == () and room.target.rooms == ("r",)
    assert base.to_user(42).target.rooms == ("user:42",)
    assert base.broadcast is base


# -- through a real Redis to real nodes -------------------------------------------------------------------


async def test_sync_emitter_reaches_clients_on_both_nodes(cluster: Cluster) -> None:
    user, room, event = uniq("u"), uniq("room"), uniq("ev")
    emitter = Emitter.from_url(cluster.redis.url)
    try:
        async with clients(cluster.a.url, cluster.b.url, cluster.b.url) as (a1, b1, b2):
            await a1.call("login", user)
            await b1.call("login", user)
            await b2.call("join", room)
            # to_user reaches both tabs, on both nodes; the emitter is blocking: run it off the loop.
            nodes = await asyncio.to_thread(emitter.to_user(user).emit, event, {"reason": "bye"})
            assert nodes == 2  # both nodes are subscribed
            await wait_until(lambda: got(a1, event) and got(b1, event), what="the user's sockets")
            await asyncio.to_thread(emitter.to(room).emit, event, "room")
            await asyncio.to_thread(emitter.broadcast.emit, event + "-all", 1, 2)
            await wait_until(lambda: got(b2, event), what="the room member")
            await wait_until(lambda: all(got(c, event + "-all") for c in (a1, b1, b2)), what="everyone")
            await settle()
            assert got(a1, event) == [{"reason": "bye"}] and got(b1, event) == [{"reason": "bye"}]
            assert got(b2, event) == ["room"]
            assert all(got(c, event + "-all") == [[1, 2]] for c in (a1, b1, b2))
    finally:
        emitter.close()


async def test_async_emitter_rooms_except_namespace_and_binary(cluster: Cluster) -> None:
    room, muted, event = uniq("room"), uniq("muted"), uniq("ev")
    emitter = AsyncEmitter.from_url(cluster.redis.url)
    try:
        async with clients(cluster.a.url, cluster.b.url, (cluster.b.url, "/admin")) as (a1, b1, admin):
            await a1.call("join", room)
            await b1.call("join", room)
            await b1.call("join", muted)
            await admin.call("join", room)
            await emitter.to(room).except_(muted).emit(event, b"\x00\xfe")
            await emitter.of("/admin").in_(room).emit(event, "admins")
            await wait_until(lambda: got(a1, event) and got(admin, event), what="the targets")
            await settle()
            assert got(a1, event) == [b"\x00\xfe"]
            assert got(b1, event) == []
            assert got(admin, event) == ["admins"]
            # sockets_join / disconnect_sockets from outside the cluster
            extra = uniq("extra")
            await emitter.to(b1.sid).sockets_join(extra)
            await emitter.to(extra).emit(event + "-x", 1)
            await wait_until(
                lambda: got(b1, event + "-x"), what="an emit to the room joined through the emitter"
            )
            await emitter.to(extra).disconnect_sockets()
            await wait_until(lambda: not b1.sio.connected, what="the disconnect")
    finally:
        await emitter.aclose()


async def test_touch_and_end_session_are_published_for_every_node(cluster: Cluster) -> None:
    listener = redis.Redis.from_url(cluster.redis.url)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(SESSION_CHANNEL)
    emitter = Emitter.from_url(cluster.redis.url)
    try:
        assert emitter.touch("sess-1") == 3  # both nodes and the listener
        assert emitter.end_session("sess-1", "admin") == 3
        commands: list[SessionCommand] = []
        deadline = time.monotonic() + scaled(5)
        while len(commands) < 2 and time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.1)
            if msg:
                commands.append(decode_session_command(msg["data"]))
        assert [(c.type, c.session, c.reason) for c in commands] == [
            ("touch", "sess-1", None),
            ("end", "sess-1", "admin"),
        ]
    finally:
        pubsub.close()
        listener.close()
        emitter.close()


# -- the npm emitter ---------------------------------------------------------------------------------------


def run_npm_emitter(redis_url: str, steps: list[dict[str, Any]]) -> None:
    js_modules_ready("@socket.io/redis-emitter", "redis")
    proc = subprocess.run(
        [node_bin(), str(JS_DIR / "redis_emit.mjs"), redis_url, json.dumps(steps)],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        cwd=JS_DIR,
    )
    assert proc.returncode == 0 and "sent" in proc.stdout, proc.stderr


async def test_npm_redis_emitter_reaches_tether_clients(cluster: Cluster) -> None:
    room, muted, event, user = uniq("room"), uniq("muted"), uniq("ev"), uniq("u")
    async with clients(cluster.a.url, cluster.b.url, cluster.b.url, (cluster.a.url, "/admin")) as cs:
        a1, b1, b2, admin = cs
        await a1.call("join", room)
        await b1.call("join", room)
        await b2.call("join", room)
        await b2.call("join", muted)
        await a1.call("login", user)
        await admin.call("join", room)
        steps: list[dict[str, Any]] = [
            {"op": "emit", "event": event + "-all", "args": ["everyone", {"n": 1}]},
            {
                "op": "emit",
                "to": room,
                "except": muted,
                "event": event,
                "args": [{"bin": {"$bin": "00ff10"}}],
            },
            {"op": "emit", "to": f"user:{user}", "event": event + "-user", "args": ["you"]},
            {"op": "emit", "nsp": "/admin", "to": room, "event": event + "-admin", "args": []},
            {"op": "socketsJoin", "to": b2.sid, "rooms": [uniq("ignored"), "from-node"]},
        ]
        await asyncio.to_thread(run_npm_emitter, cluster.redis.url, steps)
        await wait_until(lambda: all(got(c, event + "-all") for c in (a1, b1, b2)), what="emit to all")
        await wait_until(lambda: got(a1, event) and got(b1, event), what="emit to the room")
        await wait_until(
            lambda: got(a1, event + "-user") and got(admin, event + "-admin"), what="user and /admin"
        )
        await settle()
        for c in (a1, b1, b2):
            assert got(c, event + "-all") == [["everyone", {"n": 1}]]
        assert got(a1, event) == [{"bin": b"\x00\xff\x10"}] and got(b1, event) == [{"bin": b"\x00\xff\x10"}]
        assert got(b2, event) == []  # in `muted`
        assert got(a1, event + "-user") == ["you"] and got(b1, event + "-user") == []
        assert got(admin, event + "-admin") == [[]]  # an event without arguments
        assert "from-node" in await b2.call("rooms")


def test_npm_emitter_payload_decodes_in_python(redis_server: RedisServer) -> None:
    """The codec alone: what notepack.io wrote, captured on Redis, is what decode_broadcast reads."""
    url = redis_server.url
    r = redis.Redis.from_url(url)
    pubsub = r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.psubscribe("socket.io#*")
    try:
        run_npm_emitter(
            url, [{"op": "emit", "to": "r1", "except": "r2", "event": "e", "args": [1.5, None, "é"]}]
        )
        msg = None
        deadline = time.monotonic() + scaled(5)
        while msg is None and time.monotonic() < deadline:
            msg = pubsub.get_message(timeout=0.1)
        assert msg is not None and msg["channel"] == b"socket.io#/#r1#"
        b = decode_broadcast(msg["data"])
        assert (b.uid, b.namespace, b.event, b.args, b.rooms, b.except_rooms) == (
            "emitter",
            "/",
            "e",
            (1.5, None, "é"),
            ("r1",),
            ("r2",),
        )
    finally:
        pubsub.close()
        r.close()
