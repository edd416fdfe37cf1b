"""Engine.IO v4 packets and polling payload framing: bytes in, values out, and back. No event loop."""

from __future__ import annotations

import base64

import pytest

from tether.errors import LocalProtocolError, PayloadTooBig, ProtocolError, RemoteProtocolError
from tether.protocol.engineio import (
    RECORD_SEPARATOR,
    Binary,
    Packet,
    PacketType,
    decode_payload,
    encode_message,
    encode_payload,
)


@pytest.mark.parametrize(
    ("text", "ptype", "data"),
    [
        ('0{"sid":"abc"}', PacketType.OPEN, '{"sid":"abc"}'),
        ("1", PacketType.CLOSE, ""),
        ("2", PacketType.PING, ""),
        ("2probe", PacketType.PING, "probe"),
        ("3", PacketType.PONG, ""),
        ("3probe", PacketType.PONG, "probe"),
        ("4hello", PacketType.MESSAGE, "hello"),
        ("4", PacketType.MESSAGE, ""),
        ("5", PacketType.UPGRADE, ""),
        ("6", PacketType.NOOP, ""),
        ("4h\u00e9llo \u2603", PacketType.MESSAGE, "h\u00e9llo \u2603"),
    ],
)
def test_decode_every_text_type(text: str, ptype: PacketType, data: str) -> None:
    packet = Packet.decode(text)
    assert packet == Packet(ptype, data)
    assert packet.encode() == text.encode()


def test_binary_frame_is_a_message_with_bytes() -> None:
    packet = Packet.decode(b"\x00\x01\xff")
    assert packet == Packet(PacketType.MESSAGE, b"\x00\x01\xff")
    encoded = packet.encode()
    assert isinstance(encoded, Binary)
    assert encoded == b"\x00\x01\xff"


def test_only_messages_carry_binary() -> None:
    with pytest.raises(LocalProtocolError, match="only MESSAGE packets carry binary data, not PING"):
        Packet(PacketType.PING, b"x").encode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty Engine.IO packet"),
        ("7", "unknown Engine.IO packet type '7'"),
        ("x42", "unknown Engine.IO packet type 'x'"),
        ("{}", "unknown Engine.IO packet type '{'"),
    ],
)
def test_decode_errors_say_why(text: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        Packet.decode(text)
    assert str(info.value) == reason


def test_encode_message() -> None:
    assert encode_message('2["a"]') == b'42["a"]'
    assert encode_message("\u00e9") == "4\u00e9".encode()


def test_encode_payload_single_text_packet_is_sent_as_is() -> None:
    assert encode_payload([b"4hello"]) == b"4hello"


def test_encode_payload_joins_with_record_separator_and_base64s_binary() -> None:
    body = encode_payload([b'451-["up",{"_placeholder":true,"num":0}]', Binary(b"\x00\xff"), b"2"])
    assert body == b'451-["up",{"_placeholder":true,"num":0}]\x1eb' + base64.b64encode(b"\x00\xff") + b"\x1e2"
    assert encode_payload([Binary(b"\x01")]) == b"bAQ=="


def test_decode_payload_round_trip() -> None:
    body = encode_payload([b"40", b'42["a",1]', Binary(b"\x00\x01"), b"3", b"6"])
    assert decode_payload(body, 1000) == [
        Packet(PacketType.MESSAGE, "0"),
        Packet(PacketType.MESSAGE, '2["a",1]'),
        Packet(PacketType.MESSAGE, b"\x00\x01"),
        Packet(PacketType.PONG, ""),
        Packet(PacketType.NOOP, ""),
    ]
    assert RECORD_SEPARATOR == "\x1e"


def test_decode_payload_limit_is_inclusive() -> None:
    body = b"4" + b"x" * 99
    assert decode_payload(body, 100) == [Packet(PacketType.MESSAGE, "x" * 99)]
    with pytest.raises(PayloadTooBig) as info:
        decode_payload(body + b"x", 100)
    assert (info.value.size, info.value.max_size) == (101, 100)
    assert str(info.value) == "payload of 101 bytes exceeds max_payload=100"
    assert isinstance(info.value, RemoteProtocolError)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty Engine.IO packet"),
        (b"4a\x1e\x1e4b", "empty Engine.IO packet"),
        (b"4a\x1e", "empty Engine.IO packet"),
        (b"\xff\xfe", "polling payload is not valid UTF-8"),
        (b"b!!notbase64", "bad base64 in binary polling packet"),
        (b"bAQ", "bad base64 in binary polling packet"),
        ("b\u00e9".encode(), "bad base64 in binary polling packet"),
        (b"9", "unknown Engine.IO packet type '9'"),
    ],
)
def test_decode_payload_errors(body: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_payload(body, 1000)
    assert str(info.value) == reason
    assert isinstance(info.value, ProtocolError)
