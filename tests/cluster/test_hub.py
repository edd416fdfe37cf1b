"""The hub adapter: two real servers in one process linked by a Hub, as the master links its workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import socketio
import websockets

from tests.helpers import scaled, wait_until
from tether import Config, Router, Server, run_server
from tether.cluster.base import BroadcastMessage
from tether.cluster.hub import (
    BROADCAST,
    PRESENCE,
    FrameReader,
    Hub,
    HubAdapter,
    decode_broadcast,
    encode_broadcast,
    frame,
)
from tether.errors import ClusterError
from tether.protocol.engineio import Binary


def make_router() -> Router:
    router = Router()

    async def join(socket: Any, room: str) -> bool:
        socket.join(room)
        return True

    async def login(socket: Any, user: str) -> bool:
        socket.login_using(user)
        return True

    async def sid(socket: Any) -> str:
        return str(socket.sid)

    router.on("join", join)
    router.on("login", login)
    router.on("sid", sid)
    return router


class Linked:
    """Servers whose HubAdapters talk through a Hub, with the channel's asynchrony (call_soon) kept."""

    def __init__(self) -> None:
        self.hub = Hub()
        self.servers: dict[int, Server] = {}
        self.adapters: dict[int, HubAdapter] = {}

    async def add(self, wid: int, parser: str = "socketio") -> Server:
        loop = asyncio.get_running_loop()
        to_hub = FrameReader()
        from_hub = FrameReader()

        def send(data: bytes) -> None:  # worker -> master
            def relay() -> None:
                for kind, raw in to_hub.feed(data):
                    assert kind in (BROADCAST, PRESENCE)
                    self.hub.relay(wid, kind, raw)

            loop.call_soon(relay)

        adapter = HubAdapter(send, wid)

        def write(data: bytes) -> None:  # master -> worker
            def deliver() -> None:
                for kind, raw in from_hub.feed(data):
                    adapter.receive_frame(kind, raw)

            loop.call_soon(deliver)

        config = Config().replace(server={"port": 0}, websocket={"parser": parser})
        server = await run_server(config, make_router(), adapter=adapter)
        server.sid_prefix = f"{wid}."
        self.hub.add(wid, write)
        self.servers[wid] = server
        self.adapters[wid] = adapter
        return server


@pytest.fixture
async def linked() -> AsyncIterator[Linked]:
    link = Linked()
    yield link
    for server in link.servers.values():
        await server.shutdown(timeout=1)


async def _client(server: Server) -> tuple[socketio.AsyncClient, list[tuple[str, Any]]]:
    client = socketio.AsyncClient(reconnection=False)
    got: list[tuple[str, Any]] = []
    client.on("*", lambda event, *args: got.append((event, args[0] if len(args) == 1 else args)))
    await client.connect(server.url, transports=["websocket"], wait_timeout=scaled(5))
    return client, got


async def test_room_emit_and_binary_args_reach_the_other_server(linked: Linked) -> None:
    a = await linked.add(1)
    b = await linked.add(2)
    ca, got_a = await _client(a)
    cb, got_b = await _client(b)
    await ca.call("join", "lobby")
    await cb.call("join", "lobby")
    payload = {"text": "hi", "blob": b"\x00\xff", "list": [b"\x01", 2]}
    a.to("lobby").emit("news", payload)
    await wait_until(lambda: got_a and got_b)
    assert got_a == got_b == [("news", payload)]
    assert linked.adapters[1].published == 1 and linked.adapters[2].received == 1

    # To a sid that lives on the other server; and to everyone but a room.
    sid_b = await cb.call("sid")
    a.to(sid_b).emit("direct", 1)
    b.except_("nobody").emit("all", 2)
    await wait_until(lambda: len(got_b) == 3 and len(got_a) == 2)
    assert sorted(got_b[1:]) == [("all", 2), ("direct", 1)]  # local and relayed emits: no order between them
    assert got_a[1:] == [("all", 2)]
    await ca.disconnect()
    await cb.disconnect()


async def test_user_presence_is_replicated_and_forgotten(linked: Linked) -> None:
    a = await linked.add(1)
    b = await linked.add(2)
    cb, _ = await _client(b)
    assert not a.is_user_online("alice")
    await cb.call("login", "alice")
    await wait_until(lambda: a.is_user_online("alice"))
    assert linked.hub.presence == {("/", "user:alice"): {2}}

    # A server added later learns the current presence at once.
    c = await linked.add(3)
    await wait_until(lambda: c.is_user_online("alice"))

    await cb.disconnect()
    await wait_until(lambda: not a.is_user_online("alice") and not c.is_user_online("alice"))
    assert linked.hub.presence == {}

    cb2, _ = await _client(b)
    await cb2.call("login", "bob")
    await wait_until(lambda: a.is_user_online("bob"))
    linked.hub.remove(2)  # worker 2 died: the others forget its users
    await wait_until(lambda: not a.is_user_online("bob"))
    await cb2.disconnect()


async def test_mixed_parsers_reencode_from_args(linked: Linked) -> None:
    a = await linked.add(1)
    b = await linked.add(2, parser="json")
    ca, _ = await _client(a)
    async with websockets.connect(f"ws://127.0.0.1:{b.port}/ws") as ws:
        await ws.send(orjson.dumps({"event": "join", "data": "lobby", "ack": 1}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), scaled(5))) == {"ack": 1, "data": True}

        # Same parser assumed: the JSON worker cannot use socket.io packets and drops the frame.
        a.to("lobby").emit("news", 1)
        await wait_until(lambda: linked.adapters[2].dropped == 1)
        # Mixed parsers announced: frames carry the arguments, re-encoded by the JSON worker.
        linked.adapters[1].mixed_parsers = True
        a.to("lobby").emit("news", {"n": 2})
        assert orjson.loads(await asyncio.wait_for(ws.recv(), scaled(5))) == {
            "event": "news",
            "data": {"n": 2},
        }
    await ca.disconnect()


def test_broadcast_frame_roundtrip_keeps_binary_packets() -> None:
    message = BroadcastMessage("/chat", "ev", (b"\x00", {"k": (1, 2)}), ("r1",), ("r2",))
    packets = [b'451-["ev",{"_placeholder":true,"num":0}]', Binary(b"\x00")]
    raw = encode_broadcast(message, packets, "socketio", with_args=True)
    ((kind, same),) = FrameReader().feed(raw)
    assert kind == BROADCAST and same == raw
    decoded, parser, got_packets, has_args = decode_broadcast(raw)
    assert parser == "socketio" and has_args
    assert decoded == BroadcastMessage("/chat", "ev", (b"\x00", {"k": [1, 2]}), ("r1",), ("r2",))
    assert got_packets == packets and type(got_packets[1]) is Binary and type(got_packets[0]) is bytes
    _, _, _, has_args = decode_broadcast(encode_broadcast(message, packets, "socketio", with_args=False))
    assert not has_args


def test_frame_reader_splits_and_rejects_bad_lengths() -> None:
    data = frame(PRESENCE, ["/", "user:x", True, 1]) + frame(BROADCAST, [1])
    reader = FrameReader()
    out = []
    for i in range(len(data)):  # byte by byte: frames come out whole, in order
        out += reader.feed(data[i : i + 1])
    assert [k for k, _ in out] == [PRESENCE, BROADCAST]
    with pytest.raises(ClusterError):
        FrameReader().feed(b"\x00\x00\x00\x00")
    with pytest.raises(ClusterError):
        FrameReader().feed(b"\xff\xff\xff\xff")
    with pytest.raises(ClusterError):
        decode_broadcast(frame(BROADCAST, [99, "socketio", "/", "e", [], [], [], None]))


def test_args_msgpack_cannot_carry_are_refused_clearly() -> None:
    message = BroadcastMessage("/", "ev", (object(),))
    with pytest.raises(TypeError, match="cannot send object between workers"):
        encode_broadcast(message, [b"42[]"], "socketio", with_args=True)


def test_requests_go_to_every_other_worker_and_answers_to_the_asker_only() -> None:
    from tether.cluster.hub import ANSWER, COUNT, REQUEST, body_of

    hub = Hub()
    written: dict[int, list[bytes]] = {1: [], 2: [], 3: []}
    for wid in written:
        hub.add(wid, written[wid].append)
    request = frame(REQUEST, [1, "/", "rid-1", b"{}"])
    hub.relay(1, REQUEST, request)
    assert written[2] == [request] and written[3] == [request]
    ((kind, count),) = FrameReader().feed(written[1][0])
    assert kind == COUNT and body_of(count) == ["rid-1", 2]  # the asker learns how many will answer
    change = frame(REQUEST, [1, "/", None, b"{}"])  # a change (join, leave...): nobody answers, no count
    hub.relay(1, REQUEST, change)
    assert len(written[1]) == 1 and written[2][-1] == change
    answer = frame(ANSWER, [1, "/", b'{"requestId": "rid-1"}'])
    hub.relay(3, ANSWER, answer)
    assert written[1][-1] == answer and written[2][-1] == change  # to the asker only
    hub.relay(3, ANSWER, frame(ANSWER, [9, "/", b"{}"]))  # the asker is gone: dropped
