"""The three frame parsers: Socket.IO (default), JSON ``{"event", "data"}`` and raw. No event loop."""

from __future__ import annotations

from typing import Any

import pytest

from tether import JsonParser, Parser, RawParser, SocketIOParser
from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.engineio import Binary
from tether.protocol.events import Ack, Connect, Disconnect, Event
from tether.protocol.parsers import PARSERS


def test_parsers_by_config_name() -> None:
    assert {"socketio": SocketIOParser, "json": JsonParser, "raw": RawParser} == PARSERS
    assert SocketIOParser.requires_connect and SocketIOParser.supports_namespaces
    assert not JsonParser.requires_connect and not RawParser.requires_connect


# -- Socket.IO --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "events"),
    [
        ("0", [Connect("/", None)]),
        ('0/chat,{"token":"x"}', [Connect("/chat", {"token": "x"})]),
        ("1", [Disconnect("/", "client namespace disconnect")]),
        ("1/chat,", [Disconnect("/chat", "client namespace disconnect")]),
        ('2["loginCheck",{"holding":"abc"}]', [Event("/", "loginCheck", [{"holding": "abc"}])]),
        ('2["noargs"]', [Event("/", "noargs", [])]),
        ('25["echo",1,2]', [Event("/", "echo", [1, 2], 5)]),
        ('2/chat,["echo"]', [Event("/chat", "echo", [])]),
        ('3/chat,4["ok"]', [Ack("/chat", 4, ["ok"])]),
        ("30[]", [Ack("/", 0, [])]),
    ],
)
def test_socketio_decode(message: str, events: list[Any]) -> None:
    assert SocketIOParser().decode(message) == events


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('2["a",', "invalid JSON in Socket.IO packet"),  # fast path
        ('2{"a":1}', "EVENT payload must be an array"),
        ("2[]", "EVENT payload must be an array"),
        ("2[1]", "EVENT payload must be an array"),
        ('2/chat,["a",', "invalid JSON in Socket.IO packet"),  # general path
        ("8", "unknown Socket.IO packet type '8'"),
        ("", "empty Socket.IO packet"),
    ],
)
def test_socketio_decode_errors(message: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        SocketIOParser().decode(message)
    assert str(info.value).startswith(reason)


def test_socketio_binary_event_waits_for_its_attachments() -> None:
    parser = SocketIOParser()
    announce = '52-/chat,8["up",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]'
    assert parser.decode(announce) == []
    assert parser.decode(b"first") == []
    assert parser.decode(b"second") == [Event("/chat", "up", [b"second", b"first"], 8)]
    # the parser is ready for the next packet
    assert parser.decode('2["next"]') == [Event("/", "next", [])]


def test_socketio_binary_ack() -> None:
    parser = SocketIOParser()
    assert parser.decode('61-3[{"_placeholder":true,"num":0}]') == []
    assert parser.decode(b"\x00") == [Ack("/", 3, [b"\x00"])]


def test_socketio_binary_without_announcement() -> None:
    with pytest.raises(RemoteProtocolError, match="binary message without a binary packet announcing it"):
        SocketIOParser().decode(b"stray")


def test_socketio_text_while_attachments_expected() -> None:
    parser = SocketIOParser()
    parser.decode('51-["up",{"_placeholder":true,"num":0}]')
    with pytest.raises(RemoteProtocolError, match="text packet while binary attachments were expected"):
        parser.decode('2["other"]')


def test_socketio_attachment_without_placeholder() -> None:
    parser = SocketIOParser()
    parser.decode('51-["up","no placeholder"]')
    with pytest.raises(RemoteProtocolError, match="binary attachments without placeholders"):
        parser.decode(b"x")


def test_socketio_encoders() -> None:
    p = SocketIOParser
    assert p.encode_event("/", "message", ({"code": 200},)) == [b'42["message",{"code":200}]']
    assert p.encode_ack("/", 3, ("a", 1)) == [b'433["a",1]']
    assert p.encode_ack("/chat", 3, ()) == [b"43/chat,3[]"]
    assert p.encode_ack("/", 1, (b"\x01",)) == [b'461-1[{"_placeholder":true,"num":0}]', b"\x01"]
    assert p.encode_connect("/", "SID") == [b'40{"sid":"SID"}']
    assert p.encode_connect("/chat", "SID") == [b'40/chat,{"sid":"SID"}']
    assert p.encode_disconnect("/chat") == [b"41/chat,"]


def test_socketio_connect_error_carries_message_and_data() -> None:
    # socket.io-client puts .message and .data on the Error it gives connect_error listeners.
    (wire,) = SocketIOParser.encode_connect_error("/", {"code": 401, "message": "bad token"})
    assert wire == b'44{"code":401,"message":"bad token","data":{"code":401,"message":"bad token"}}'
    (wire,) = SocketIOParser.encode_connect_error("/x", {"message": "Invalid namespace"})
    assert wire == b'44/x,{"message":"Invalid namespace"}'  # exactly what node sends
    (wire,) = SocketIOParser.encode_connect_error("/", {"data": {"why": 1}})
    assert wire == b'44{"data":{"why":1},"message":"Connection rejected by server"}'


# -- JSON ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "events"),
    [
        ('{"event":"loginCheck","data":{"holding":"x"}}', [Event("/", "loginCheck", [{"holding": "x"}])]),
        ('{"event":"ping"}', [Event("/", "ping", [])]),
        ('{"event":"n","data":null}', [Event("/", "n", [None])]),
        ('{"event":"q","data":[1,2],"ack":7}', [Event("/", "q", [[1, 2]], 7)]),
        ('{"ack":7,"data":"yes"}', [Ack("/", 7, ["yes"])]),
        ('{"ack":0}', [Ack("/", 0, [None])]),
    ],
)
def test_json_decode(message: str, events: list[Any]) -> None:
    assert JsonParser().decode(message) == events


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b'{"event":"x"}', "the json parser takes text messages only"),
        ("{oops", "invalid JSON"),
        ("", "invalid JSON"),
        ('["event","x"]', 'expected an object {"event": ..., "data": ...}'),
        ('"x"', 'expected an object {"event": ..., "data": ...}'),
        ('{"event":"x","ack":-1}', '"ack" must be a non-negative integer'),
        ('{"event":"x","ack":true}', '"ack" must be a non-negative integer'),
        ('{"event":"x","ack":"1"}', '"ack" must be a non-negative integer'),
        ('{"event":"x","ack":1.5}', '"ack" must be a non-negative integer'),
        ('{"data":1}', '"event" must be a non-empty string'),
        ('{"event":""}', '"event" must be a non-empty string'),
        ('{"event":5}', '"event" must be a non-empty string'),
    ],
)
def test_json_decode_errors(message: str | bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        JsonParser().decode(message)
    assert str(info.value).startswith(reason)


def test_json_encoders() -> None:
    p = JsonParser
    assert p.encode_event("/", "message", ({"code": 200},)) == [b'4{"event":"message","data":{"code":200}}']
    assert p.encode_event("/", "two", (1, 2)) == [b'4{"event":"two","data":[1,2]}']
    assert p.encode_event("/", "none", ()) == [b'4{"event":"none"}']
    assert p.encode_event("/", "q", ("x",), 4) == [b'4{"event":"q","data":"x","ack":4}']
    assert p.encode_ack("/", 4, ("ok",)) == [b'4{"ack":4,"data":"ok"}']
    assert p.encode_ack("/", 4, ("a", "b")) == [b'4{"ack":4,"data":["a","b"]}']
    assert p.encode_ack("/", 4, ()) == [b'4{"ack":4,"data":null}']
    # no namespaces, no CONNECT handshake: nothing to send for those
    assert p.encode_connect("/", "s") == p.encode_connect_error("/", {}) == p.encode_disconnect("/") == []


def test_json_cannot_carry_bytes() -> None:
    with pytest.raises(LocalProtocolError, match="not JSON serializable"):
        JsonParser.encode_event("/", "bin", (b"\x00",))


# -- raw ----------------------------------------------------------------------------------------------------


def test_raw_decode_everything_is_a_message_event() -> None:
    assert RawParser().decode("hello") == [Event("/", "message", ["hello"])]
    assert RawParser().decode('42["not","parsed"]') == [Event("/", "message", ['42["not","parsed"]'])]
    assert RawParser().decode(b"\x00\x01") == [Event("/", "message", [b"\x00\x01"])]


def test_raw_encoders_send_values_as_is() -> None:
    wire = RawParser.encode_event("/", "message", ("text", b"\x00", {"a": 1}, [1]))
    assert wire == [b"4text", b"\x00", b'4{"a":1}', b"4[1]"]
    assert type(wire[1]) is Binary and type(wire[0]) is bytes
    assert RawParser.encode_ack("/", 1, ("ok",)) == [b"4ok"]


def test_base_parser_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Parser().decode("x")
    with pytest.raises(NotImplementedError):
        Parser.encode_event("/", "x", ())
    with pytest.raises(NotImplementedError):
        Parser.encode_ack("/", 1, ())


@pytest.mark.parametrize("parser_cls", [SocketIOParser, JsonParser])
def test_parsers_bound_nesting_at_max_depth(parser_cls: type[Parser]) -> None:
    parser = parser_cls()
    parser.max_depth = 4
    if parser_cls is SocketIOParser:
        fast, slow = '2["e",[[["x"]]]]', '2/a,["e",[[["x"]]]]'  # 4 deep: accepted
        for message in (fast, slow):
            assert parser.decode(message)
        for message in ('2["e",[[[["x"]]]]]', '2/a,["e",[[[["x"]]]]]', '21["e",{"a":{"b":{"c":[]}}}]'):
            with pytest.raises(RemoteProtocolError, match="deeper than 4 levels"):
                parser.decode(message)
        # A placeholder inside the bound is reconstructed; one past it never waits for its attachment.
        assert parser.decode('51-["e",[[{"_placeholder":true,"num":0}]]]') == []
        assert parser.decode(b"\x01") == [Event("/", "e", [[[b"\x01"]]])]
        with pytest.raises(RemoteProtocolError, match="deeper than 4 levels"):
            parser.decode('51-["e",[[[{"_placeholder":true,"num":0}]]]]')
    else:
        assert parser.decode('{"event":"e","data":[[["x"]]]}')  # object, array x3: 4 deep
        with pytest.raises(RemoteProtocolError, match="deeper than 4 levels"):
            parser.decode('{"event":"e","data":[[[["x"]]]]}')
