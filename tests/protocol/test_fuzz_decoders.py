"""Property tests: every decoder either decodes or raises tether's ProtocolError, never anything else.

A decoder that lets a ValueError, KeyError or IndexError escape would take the transport down with an
unexpected exception instead of closing one connection with a reason. The strategies mix random text
with near-valid packets (valid prefixes followed by noise) so that the deeper branches are reached.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.errors import ProtocolError
from tether.protocol import engineio, socketio
from tether.protocol.connection import Connection, Transport
from tether.protocol.parsers import JsonParser, RawParser, SocketIOParser

# 300 examples each keeps `make test` quick; TETHER_FUZZ_EXAMPLES=20000 makes a deeper run by hand.
FUZZ = settings(
    max_examples=int(os.environ.get("TETHER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Text from a small alphabet of the characters the wire formats care about (digits, JSON punctuation, the
# record separator, base64, non-ASCII digits that str.isdigit() accepts), plus some arbitrary Unicode.
# Drawing from full Unicode for every character makes generation, not decoding, the cost of these tests.
_ALPHABET = '0123456789-/,[]{}":.eE+ _\\tnulrsfabxAQ=\x1e\x00\u00e9\u00b2\u0663\u2603\U0001f600'
_text = st.one_of(st.text(_ALPHABET, max_size=40), st.text(max_size=6))

# Pieces a Socket.IO packet is made of, to build near-valid packets from.
_sio_heads = st.sampled_from(["0", "1", "2", "3", "4", "5", "6", "51-", "61-", "5²-", "5٣-", "5-", "9", ""])
_namespaces = st.sampled_from(["", "/", "/chat,", "/chat", "/ü,", "/a,b,", ","])
_ack_ids = st.sampled_from(["", "0", "7", "12345678901234567", "9007199254740992", "٣", "²"])
_json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(_ALPHABET, max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(_ALPHABET, max_size=4), children, max_size=4)
    ),
    max_leaves=10,
)
_placeholder = st.fixed_dictionaries(
    {
        "_placeholder": st.sampled_from([True, False, 1]),
        "num": st.one_of(st.integers(-2, 3), st.text(_ALPHABET, max_size=2)),
    }
)
_bodies = st.one_of(
    _text,
    _json_values.map(lambda v: json.dumps(v)),
    st.lists(st.one_of(st.text(_ALPHABET, max_size=5), _placeholder, _json_values), max_size=4).map(
        lambda v: json.dumps(v)
    ),
)
sio_text = st.one_of(
    _text,
    st.tuples(_sio_heads, _namespaces, _ack_ids, _bodies).map("".join),
)
eio_text = st.one_of(_text, st.tuples(st.sampled_from("0123456789b"), sio_text).map("".join))


def _decodes_or_protocol_error(fn: Any, *args: Any) -> None:
    with contextlib.suppress(ProtocolError):
        fn(*args)


@FUZZ
@given(eio_text | st.binary(max_size=40))
def test_engineio_packet_decode(message: str | bytes) -> None:
    _decodes_or_protocol_error(engineio.Packet.decode, message)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=80),
        st.lists(
            st.one_of(eio_text, st.binary(max_size=10).map(lambda b: "b" + base64.b64encode(b).decode())),
            max_size=5,
        ).map(lambda parts: "\x1e".join(parts).encode()),
    ),
    st.integers(1, 100),
)
def test_engineio_decode_payload(body: bytes, max_payload: int) -> None:
    _decodes_or_protocol_error(engineio.decode_payload, body, max_payload)


@FUZZ
@given(sio_text)
def test_socketio_packet_decode(text: str) -> None:
    _decodes_or_protocol_error(socketio.Packet.decode, text)


@FUZZ
@given(st.lists(st.one_of(sio_text, st.binary(max_size=8)), min_size=1, max_size=6))
def test_socketio_parser_with_attachments(messages: list[str | bytes]) -> None:
    # One parser fed a whole sequence: binary attachments in flight carry state from one message to the next.
    parser = SocketIOParser()
    for message in messages:
        try:
            parser.decode(message)
        except ProtocolError:
            parser = SocketIOParser()  # the transport closes the connection; a new one starts clean


@FUZZ
@given(
    st.one_of(
        _text,
        st.binary(max_size=20),
        st.dictionaries(
            st.sampled_from(["event", "data", "ack", "x"]),
            st.one_of(_json_values, st.integers(-3, 3), st.booleans()),
            max_size=4,
        ).map(lambda d: json.dumps(d)),
    )
)
def test_json_parser_decode(message: str | bytes) -> None:
    _decodes_or_protocol_error(JsonParser().decode, message)


@FUZZ
@given(_text | st.binary(max_size=30))
def test_raw_parser_decodes_anything(message: str | bytes) -> None:
    assert len(RawParser().decode(message)) == 1


@FUZZ
@given(st.lists(eio_text | st.binary(max_size=10), min_size=1, max_size=5), st.booleans())
def test_connection_receive_message(messages: list[str | bytes], bare: bool) -> None:
    conn = Connection(
        "sid", SocketIOParser(), Transport.BARE if bare else Transport.WEBSOCKET, now=0.0, max_payload=64
    )
    for message in messages:
        try:
            conn.receive_message(message)
        except ProtocolError:
            return
