"""Socket.IO v5 packets: every type, namespaces, ack ids, binary attachments and the errors. No event loop."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.engineio import Binary
from tether.protocol.socketio import (
    MAX_ATTACHMENTS,
    MAX_DEPTH,
    RESERVED_PREFIXES,
    Packet,
    PacketType,
    check_depth,
    check_size,
    deconstruct,
    encode_event,
    is_reserved_event,
    nesting_exceeds,
    reconstruct,
)

PH0 = {"_placeholder": True, "num": 0}
PH1 = {"_placeholder": True, "num": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Packet(PacketType.CONNECT)),
        ('0{"token":"x"}', Packet(PacketType.CONNECT, "/", {"token": "x"})),
        ('0/admin,{"token":"x"}', Packet(PacketType.CONNECT, "/admin", {"token": "x"})),
        ("0/admin,", Packet(PacketType.CONNECT, "/admin")),
        ("0/admin", Packet(PacketType.CONNECT, "/admin")),
        ("1", Packet(PacketType.DISCONNECT)),
        ("1/admin,", Packet(PacketType.DISCONNECT, "/admin")),
        ('2["chat","hi"]', Packet(PacketType.EVENT, "/", ["chat", "hi"])),
        ('212["chat"]', Packet(PacketType.EVENT, "/", ["chat"], 12)),
        ('2/chat,7["chat",{"a":[1,2]}]', Packet(PacketType.EVENT, "/chat", ["chat", {"a": [1, 2]}], 7)),
        ('2/a/b-c,["x"]', Packet(PacketType.EVENT, "/a/b-c", ["x"])),
        ("30[]", Packet(PacketType.ACK, "/", [], 0)),
        ('3/chat,7["ok",2]', Packet(PacketType.ACK, "/chat", ["ok", 2], 7)),
        (
            '51-["up",{"_placeholder":true,"num":0}]',
            Packet(PacketType.BINARY_EVENT, "/", ["up", PH0], None, 1),
        ),
        (
            '52-/chat,3["up",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            Packet(PacketType.BINARY_EVENT, "/chat", ["up", PH0, PH1], 3, 2),
        ),
        ('61-4[{"_placeholder":true,"num":0}]', Packet(PacketType.BINARY_ACK, "/", [PH0], 4, 1)),
        ('61-/n,9[{"_placeholder":true,"num":0}]', Packet(PacketType.BINARY_ACK, "/n", [PH0], 9, 1)),
        ('29007199254740991["max"]', Packet(PacketType.EVENT, "/", ["max"], 2**53 - 1)),
    ],
)
def test_decode(text: str, expected: Packet) -> None:
    assert Packet.decode(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty Socket.IO packet"),
        ("7", "unknown Socket.IO packet type '7'"),
        ("a", "unknown Socket.IO packet type 'a'"),
        ('4{"message":"x"}', "CONNECT_ERROR is sent by servers only"),
        ('5["up"]', "binary packet without a valid attachment count"),
        ('5x-["up"]', "binary packet without a valid attachment count"),
        ('51234-["up"]', "binary packet without a valid attachment count"),
        ('5\u00b2-["up"]', "binary packet without a valid attachment count"),
        ('5\u0663-["up"]', "binary packet without a valid attachment count"),
        (f'5{MAX_ATTACHMENTS + 1}-["up"]', f"{MAX_ATTACHMENTS + 1} attachments exceeds {MAX_ATTACHMENTS}"),
        ('212345678901234567["x"]', "ack id too long"),
        ('29007199254740992["x"]', "ack id out of range"),
        ('2["chat",', "invalid JSON in Socket.IO packet"),
        ("2/chat,{oops", "invalid JSON in Socket.IO packet"),
        ("2[NaN]", "invalid JSON in Socket.IO packet"),
        ("2", "EVENT payload must be an array starting with the event name"),
        ("2[]", "EVENT payload must be an array starting with the event name"),
        ("2[1,2]", "EVENT payload must be an array starting with the event name"),
        ('2{"a":1}', "EVENT payload must be an array starting with the event name"),
        ('51-{"a":1}', "EVENT payload must be an array starting with the event name"),
        ("3[1]", "ACK without an id"),
        ('31{"a":1}', "ACK payload must be an array"),
        ("3/chat,1", "ACK payload must be an array"),
        ('0"token"', "CONNECT payload must be an object"),
        ("0[1]", "CONNECT payload must be an object"),
        ("01{}", "CONNECT carries no ack id"),
        ("1/admin,5", "DISCONNECT carries no ack id"),
        ("1{}", "DISCONNECT carries no payload"),
    ],
)
def test_decode_errors_say_why(text: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Packet.decode(text)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize(
    ("packet", "wire"),
    [
        (Packet(PacketType.CONNECT, "/", {"sid": "abc"}), [b'40{"sid":"abc"}']),
        (Packet(PacketType.CONNECT, "/admin", {"sid": "abc"}), [b'40/admin,{"sid":"abc"}']),
        (Packet(PacketType.DISCONNECT), [b"41"]),
        (Packet(PacketType.DISCONNECT, "/admin"), [b"41/admin,"]),
        (Packet(PacketType.EVENT, "/", ["a", 1]), [b'42["a",1]']),
        (Packet(PacketType.EVENT, "/chat", ["a"], 12), [b'42/chat,12["a"]']),
        (Packet(PacketType.ACK, "/", [], 3), [b"433[]"]),
        (Packet(PacketType.ACK, "/n", ["ok", None], 0), [b'43/n,0["ok",null]']),
        (Packet(PacketType.CONNECT_ERROR, "/", {"message": "no"}), [b'44{"message":"no"}']),
        (Packet(PacketType.CONNECT_ERROR, "/x", {"message": "no"}), [b'44/x,{"message":"no"}']),
    ],
)
def test_encode(packet: Packet, wire: list[bytes]) -> None:
    assert packet.encode() == wire


def test_encode_with_bytes_becomes_binary_event_with_attachments() -> None:
    text, *attachments = Packet(
        PacketType.EVENT, "/chat", ["up", {"f": b"\x00\x01", "g": [b"\xff"]}], 5
    ).encode()
    assert (
        text == b'452-/chat,5["up",{"f":{"_placeholder":true,"num":0},"g":[{"_placeholder":true,"num":1}]}]'
    )
    assert attachments == [b"\x00\x01", b"\xff"]
    assert all(type(a) is Binary for a in attachments)
    # and back, through the decoder
    packet = Packet.decode(text[1:].decode())
    assert packet.type is PacketType.BINARY_EVENT and packet.attachments == 2 and packet.id == 5
    assert reconstruct(packet.data, attachments) == ["up", {"f": b"\x00\x01", "g": [b"\xff"]}]


def test_encode_binary_ack() -> None:
    wire = Packet(PacketType.ACK, "/", [b"ok"], 9).encode()
    assert wire == [b'461-9[{"_placeholder":true,"num":0}]', b"ok"]


def test_encode_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError, match="not JSON serializable"):
        Packet(PacketType.EVENT, "/", ["a", object()]).encode()
    with pytest.raises(LocalProtocolError, match="not JSON serializable"):
        Packet(PacketType.CONNECT, "/", {"x": {1, 2}}).encode()


@pytest.mark.parametrize(
    ("args", "namespace", "ack_id", "wire"),
    [
        (("hi",), "/", None, [b'42["chat","hi"]']),
        ((), "/", None, [b'42["chat"]']),
        ((1, None, {"a": True}), "/", None, [b'42["chat",1,null,{"a":true}]']),
        (("hi",), "/admin", None, [b'42/admin,["chat","hi"]']),
        (("hi",), "/", 7, [b'427["chat","hi"]']),
        (("hi",), "/admin", 0, [b'42/admin,0["chat","hi"]']),
        ((b"\x01",), "/", None, [b'451-["chat",{"_placeholder":true,"num":0}]', b"\x01"]),
        ((bytearray(b"\x02"),), "/a", 3, [b'451-/a,3["chat",{"_placeholder":true,"num":0}]', b"\x02"]),
    ],
)
def test_encode_event(args: tuple[Any, ...], namespace: str, ack_id: int | None, wire: list[bytes]) -> None:
    assert encode_event(namespace, "chat", args, ack_id) == wire


def test_encode_event_matches_packet_encode() -> None:
    # The fast path must produce exactly what the general encoder does.
    for ns in ("/", "/x"):
        for ack in (None, 0, 42):
            args = ("a", {"b": [1, 2.5, "\u2603"]})
            assert (
                encode_event(ns, "ev", args, ack) == Packet(PacketType.EVENT, ns, ["ev", *args], ack).encode()
            )


def test_deconstruct_and_reconstruct() -> None:
    data = {"a": b"1", "b": [b"2", {"c": memoryview(b"3")}], "d": (b"4",), "e": "text"}
    out, attachments = deconstruct(data)
    assert out == {
        "a": PH0,
        "b": [PH1, {"c": {"_placeholder": True, "num": 2}}],
        "d": [{"_placeholder": True, "num": 3}],
        "e": "text",
    }
    assert attachments == [b"1", b"2", b"3", b"4"]
    assert reconstruct(out, attachments) == {"a": b"1", "b": [b"2", {"c": b"3"}], "d": [b"4"], "e": "text"}


def test_deconstruct_without_bytes_is_identity() -> None:
    assert deconstruct(["a", {"b": 1}]) == (["a", {"b": 1}], [])


def test_reconstruct_leaves_lookalike_objects_alone() -> None:
    # Only an object with exactly the two placeholder keys is a placeholder.
    data = [{"_placeholder": True, "num": 0, "extra": 1}, {"_placeholder": False, "num": 0}, PH0]
    assert reconstruct(data, [b"x"]) == [data[0], data[1], b"x"]


@pytest.mark.parametrize(
    ("data", "attachments", "reason"),
    [
        ([{"_placeholder": True, "num": 1}], [b"x"], "placeholder number 1 out of range"),
        ([{"_placeholder": True, "num": -1}], [b"x"], "placeholder number -1 out of range"),
        ([{"_placeholder": True, "num": "0"}], [b"x"], "placeholder number '0' out of range"),
        ([{"_placeholder": True, "num": True}], [b"x"], "placeholder number True out of range"),
        ([{"_placeholder": True, "num": 0.0}], [b"x"], "placeholder number 0.0 out of range"),
        ([PH0], [b"x", b"y"], "binary attachments without placeholders"),
        (["no placeholders"], [b"x"], "binary attachments without placeholders"),
    ],
)
def test_reconstruct_errors(data: Any, attachments: list[bytes], reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        reconstruct(data, attachments)
    assert str(info.value) == reason


def test_check_size() -> None:
    check_size(10, 10)
    with pytest.raises(RemoteProtocolError, match="payload of 11 bytes exceeds max_payload=10"):
        check_size(11, 10)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of arrays around ``leaf``; objects on odd levels so that both kinds count."""
    value = leaf
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [1, 2, 5, 31, 32, 33, 64])
def test_nesting_exceeds_at_the_bound_and_one_past(depth: int) -> None:
    value = nested(depth)
    assert nesting_exceeds(value, depth) is False
    assert nesting_exceeds(value, depth - 1) is True
    assert nesting_exceeds([1, "a", [], {}, value], depth + 1) is False
    assert nesting_exceeds([1, "a", [], {}, value], depth) is True
    assert nesting_exceeds("scalar", 0) is False


def test_nesting_walk_is_iterative() -> None:
    # Far deeper than the recursion limit: the check itself must not be what raises.
    assert nesting_exceeds(nested(5000), 254) is True


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1])
def test_packet_decode_bounds_depth(depth: int) -> None:
    # The event array is level 1: ["e", <depth - 1 levels>] is depth levels deep.
    text = "2" + orjson.dumps(["e", nested(depth - 1)]).decode()
    if depth <= MAX_DEPTH:
        assert Packet.decode(text).data == ["e", nested(depth - 1)]
    else:
        with pytest.raises(RemoteProtocolError, match=f"deeper than {MAX_DEPTH} levels"):
            Packet.decode(text)
    with pytest.raises(RemoteProtocolError, match="deeper than 3 levels"):
        Packet.decode('3/a,1[[[["x"]]]]', max_depth=3)
    assert Packet.decode('3/a,1[[["x"]]]', max_depth=3).data == [[["x"]]]


def test_check_depth_counts_brackets_before_walking() -> None:
    # Brackets inside strings make the cheap count overestimate; the walk then decides.
    text = '["' + "[" * 100 + '"]'
    check_depth(text, orjson.loads(text), 2)
    check_depth(text.encode(), orjson.loads(text), 2)
    with pytest.raises(RemoteProtocolError):
        check_depth("[[[]]]", [[[]]], 2)
    with pytest.raises(RemoteProtocolError):
        check_depth(b"[[[]]]", [[[]]], 2)


def test_every_reserved_prefix_has_a_colon() -> None:
    # The WebSocket fast path (server/websocket.py) skips the prefix test for a name without a colon.
    assert all(":" in prefix for prefix in RESERVED_PREFIXES)
    assert is_reserved_event("tether:error") and is_reserved_event("session:expired")
    assert not is_reserved_event("session:logout")  # Tether's client helper sends it
    assert not is_reserved_event("tether") and not is_reserved_event("room:join")
