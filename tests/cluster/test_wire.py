"""The cluster wire format, sans-I/O: no Redis, no event loop."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from typing import Any

import msgpack
import orjson
import pytest

from tether.cluster.wire import (
    Channels,
    Request,
    RequestType,
    SessionCommand,
    decode_broadcast,
    decode_object,
    decode_request,
    decode_session_command,
    encode_broadcast,
    encode_msgpack,
    encode_session_command,
)
from tether.errors import ClusterError


def test_channel_names_match_the_node_adapter() -> None:
    c = Channels("socket.io")
    assert c.broadcast("/") == "socket.io#/#"
    assert c.broadcast("/chat", "room 1") == "socket.io#/chat#room 1#"
    assert c.request("/") == "socket.io-request#/#"
    assert c.response("/") == "socket.io-response#/#"
    assert c.specific_response("/", "abc") == "socket.io-response#/#abc#"
    assert c.broadcast_pattern == "socket.io#*"
    assert Channels("a*b[c]").broadcast_pattern == "a\\*b\\[c\\]#*"  # the prefix is literal


def test_split_broadcast_channels() -> None:
    c = Channels("p")
    assert c.split_broadcast("p#/#") == ("/", None)
    assert c.split_broadcast("p#/chat#r#") == ("/chat", "r")
    assert c.split_broadcast("p#/#a#b#") == ("/", "a#b")  # a room may contain '#'
    assert c.split_broadcast("q#/#") is None
    assert c.split_broadcast("p#nope#") is None
    assert c.namespace_of("p-request#/x#", "request") == "/x"
    assert c.namespace_of("p-response#/#uid#", "response") == "/"
    assert c.namespace_of("p-response#/#", "request") is None


def test_broadcast_round_trip_with_binary_and_rooms() -> None:
    channel, payload = encode_broadcast(
        Channels(), "node1", "/", "ev", ("a", b"\x00\x01", {"k": [1, 2.5, None]}), ["r1", "r1"], ["x"]
    )
    assert channel == "socket.io#/#r1#"  # duplicates collapse: one room
    b = decode_broadcast(payload)
    assert (b.uid, b.namespace, b.event, b.rooms, b.except_rooms) == ("node1", "/", "ev", ("r1",), ("x",))
    assert b.args == ("a", b"\x00\x01", {"k": [1, 2.5, None]})


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_values_orjson_accepts_cross_the_cluster_too() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    uid = uuid.UUID(int=1)
    _, payload = encode_broadcast(Channels(), "n", "/", "ev", (Point(1, 2), when, uid, (1, 2), {3}))
    assert decode_broadcast(payload).args == (
        {"x": 1, "y": 2},
        "2024-05-01T12:00:00+00:00",
        str(uid),
        [1, 2],
        [3],
    )
    with pytest.raises(ClusterError):
        encode_broadcast(Channels(), "n", "/", "ev", (object(),))


def test_what_notepack_writes_is_read() -> None:
    # JS `undefined` (fixext1 type 0), numeric rooms, no nsp, BINARY_EVENT type: all from real JS senders.
    undefined = msgpack.ExtType(0, b"\x00")
    raw = msgpack.packb(
        ["emitter", {"type": 5, "data": ["ev", undefined, 1]}, {"rooms": [42, 1.0], "except": []}]
    )
    b = decode_broadcast(raw)
    assert b.namespace == "/" and b.args == (None, 1) and b.rooms == ("42", "1")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc1",  # never used in msgpack
        msgpack.packb({"a": 1}),
        msgpack.packb(["u", {"type": 3, "data": ["x"]}, {}]),  # an ACK is not a broadcast
        msgpack.packb(["u", {"type": 2, "data": []}, {}]),
        msgpack.packb(["u", {"type": 2, "data": [1]}, {}]),
        msgpack.packb(["u", {"type": 2, "data": ["e"], "nsp": 5}, {}]),
    ],
)
def test_malformed_broadcasts_raise_cluster_error(raw: bytes) -> None:
    with pytest.raises(ClusterError):
        decode_broadcast(raw)


def test_requests_in_json_and_msgpack() -> None:
    node_fetch = b'{"uid":"x","requestId":"r1","type":5,"opts":{"rooms":["a"],"except":["b"]}}'
    r = decode_request(node_fetch)
    assert (r.type, r.uid, r.request_id, r.target_rooms, r.except_rooms) == (
        RequestType.REMOTE_FETCH,
        "x",
        "r1",
        ("a",),
        ("b",),
    )
    emitter_join = b'{"type":2,"opts":{"rooms":["a"],"except":[]},"rooms":["new"]}'
    r = decode_request(emitter_join)
    assert (r.type, r.rooms, r.target_rooms, r.sid) == (RequestType.REMOTE_JOIN, ("new",), ("a",), None)
    single = b'{"uid":"x","requestId":"r2","type":4,"sid":"S","close":true}'
    r = decode_request(single)
    assert (r.sid, r.close) == ("S", True)
    ack_broadcast = msgpack.packb(
        {
            "uid": "x",
            "requestId": "r3",
            "type": 7,
            "packet": {"type": 2, "data": ["e", b"\x01"], "nsp": "/"},
            "opts": {"rooms": [], "except": [], "flags": {"timeout": 1000}},
        }
    )
    r = decode_request(ack_broadcast)
    assert r.type is RequestType.BROADCAST and r.packet == {"type": 2, "data": ["e", b"\x01"], "nsp": "/"}
    assert r.flags == {"timeout": 1000}
    for bad in (b'{"type": 99}', b'{"type": "x"}', b"{oops", msgpack.packb([1, 2])):
        with pytest.raises(ClusterError):
            decode_request(bad)


def test_encoded_requests_are_what_node_sends() -> None:
    join = Request(RequestType.REMOTE_JOIN, "me", None, ("new",), ("a",), ("b",))
    assert orjson.loads(join.encode()) == {
        "uid": "me",
        "type": 2,
        "opts": {"rooms": ["a"], "except": ["b"]},
        "rooms": ["new"],
    }
    sockets = Request(RequestType.SOCKETS, "me", "id1", ("user:1",))
    assert orjson.loads(sockets.encode()) == {"uid": "me", "type": 0, "requestId": "id1", "rooms": ["user:1"]}
    assert decode_request(sockets.encode()) == sockets
    disconnect = Request(RequestType.REMOTE_DISCONNECT, "me", None, (), ("r",), (), close=True)
    assert orjson.loads(disconnect.encode())["close"] is True


def test_responses_decode_from_json_or_msgpack() -> None:
    assert decode_object(b'{"requestId":"a","sockets":["x"]}') == {"requestId": "a", "sockets": ["x"]}
    assert decode_object(encode_msgpack({"type": 9, "requestId": "a", "packet": 1}))["packet"] == 1
    with pytest.raises(ClusterError):
        decode_object(b"[1]")


def test_session_commands_are_versioned() -> None:
    cmd = SessionCommand("touch", "s1")
    assert decode_session_command(encode_session_command(cmd)) == cmd
    for bad in (
        b'{"v":2,"type":"touch","session":"s"}',
        b'{"type":"touch","session":"s"}',
        b'{"v":1,"type":"kill","session":"s"}',
        b'{"v":1,"type":"end","session":""}',
    ):
        with pytest.raises(ClusterError):
            decode_session_command(bad)


def test_broadcast_nesting_is_bounded() -> None:
    """A Redis publisher cannot make a node recurse as deep as it likes (issue 13): 254 levels, what orjson
    writes, and not one more."""
    from tether.cluster.wire import WIRE_MAX_DEPTH

    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    ok = msgpack.packb(["u", {"type": 2, "data": ["e", nested(WIRE_MAX_DEPTH - 1)], "nsp": "/"}, {}])
    assert decode_broadcast(ok).event == "e"
    for depth in (WIRE_MAX_DEPTH, 900):
        deep = msgpack.packb(["u", {"type": 2, "data": ["e", nested(depth)], "nsp": "/"}, {}])
        with pytest.raises(ClusterError, match="nested deeper than 254"):
            decode_broadcast(deep)
