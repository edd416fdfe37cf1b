"""Node's ClusterAdapter messages (tether.cluster.cluster_messages), translated both ways without I/O.

The exchange with a real node server over Redis is in tests/cluster/test_streams.py; here each translation
is checked on its own, including what it refuses."""

from __future__ import annotations

import pytest

from tether.cluster.cluster_messages import (
    MessageType,
    answer_message,
    answer_of,
    question,
    request_of,
)
from tether.cluster.wire import Request, RequestType
from tether.errors import ClusterError


def test_a_fetch_goes_out_as_fetch_sockets_and_comes_back_as_the_same_request() -> None:
    asked = Request(RequestType.REMOTE_FETCH, "me", "r1", target_rooms=("a",), except_rooms=("b",))
    message = question("me", "/chat", asked)
    assert message == {
        "uid": "me",
        "nsp": "/chat",
        "type": 7,
        "data": {"opts": {"rooms": ["a"], "except": ["b"], "flags": {}}, "requestId": "r1"},
    }
    got = request_of("me", message["type"], message["data"])
    assert got is not None
    assert (got.type, got.request_id, got.target_rooms, got.except_rooms) == (
        RequestType.REMOTE_FETCH,
        "r1",
        ("a",),
        ("b",),
    )


def test_sids_and_rooms_are_asked_as_fetch_sockets() -> None:
    """Node has no message for sockets/allRooms (it answers them locally): both ask FETCH_SOCKETS."""
    sids = question("me", "/", Request(RequestType.SOCKETS, "me", "r2", rooms=("x",)))
    rooms = question("me", "/", Request(RequestType.ALL_ROOMS, "me", "r3"))
    assert sids is not None and sids["type"] == MessageType.FETCH_SOCKETS
    assert sids["data"]["opts"]["rooms"] == ["x"]
    assert rooms is not None and rooms["type"] == MessageType.FETCH_SOCKETS
    assert question("me", "/", Request(RequestType.REMOTE_JOIN, "me", "r4")) is None  # travels in the stream


def test_a_broadcast_with_acks_carries_its_packet_and_flags() -> None:
    packet = {"type": 2, "data": ["q", 1], "nsp": "/"}
    asked = Request(RequestType.BROADCAST, "me", "r5", packet=packet, flags={"timeout": 5000})
    message = question("me", "/", asked)
    assert message is not None and message["type"] == MessageType.BROADCAST
    got = request_of("other", message["type"], message["data"])
    assert got is not None and got.type is RequestType.BROADCAST
    assert (got.uid, got.packet, got.flags) == ("other", packet, {"timeout": 5000})


def test_server_side_emit_asks_for_acks_by_the_presence_of_its_request_id() -> None:
    """Node tests ``requestId !== undefined``: a fire-and-forget event must not carry the key at all (a
    msgpack nil would read as "answer me"); its answer is type 10 with the handler's value."""
    plain = question("me", "/", Request(RequestType.SERVER_SIDE_EMIT, "me", data=("hello", 1)))
    assert plain == {"uid": "me", "nsp": "/", "type": 9, "data": {"packet": ["hello", 1]}}
    acked = question("me", "/", Request(RequestType.SERVER_SIDE_EMIT, "me", "r9", data=("ping",)))
    assert acked is not None and acked["data"] == {"packet": ["ping"], "requestId": "r9"}
    got = request_of("other", acked["type"], acked["data"])
    assert got is not None and (got.type, got.request_id, got.data) == (
        RequestType.SERVER_SIDE_EMIT,
        "r9",
        ["ping"],
    )
    got = request_of("other", 9, {"packet": ["hello", 1]})
    assert got is not None and got.request_id is None
    with pytest.raises(ClusterError, match="requestId that is not a string"):
        request_of("other", 9, {"packet": ["hello"], "requestId": 7})
    # The answer: the pub/sub adapter's shape inside Tether, type 10 on the wire.
    ours = {"type": RequestType.SERVER_SIDE_EMIT, "requestId": "r9", "data": "pong"}
    wire = answer_message("me", "/", ours)
    assert wire == {"uid": "me", "nsp": "/", "type": 10, "data": {"requestId": "r9", "packet": "pong"}}
    assert answer_of(wire["type"], wire["data"], RequestType.SERVER_SIDE_EMIT) == ours
    assert answer_of(MessageType.SERVER_SIDE_EMIT_RESPONSE, wire["data"], RequestType.REMOTE_FETCH) is None


def test_what_is_not_answered_and_what_is_refused() -> None:
    assert request_of("n", 42, {"requestId": "r"}) is None
    assert request_of("n", MessageType.BROADCAST, {"packet": {}}) is None  # without acks: in the stream
    with pytest.raises(ClusterError, match="without a requestId"):
        request_of("n", MessageType.FETCH_SOCKETS, {"opts": {}})
    with pytest.raises(ClusterError, match="without a requestId"):
        request_of("n", MessageType.BROADCAST, {"requestId": 7})


def test_answers_both_ways() -> None:
    count = answer_message(
        "me", "/", {"type": RequestType.BROADCAST_CLIENT_COUNT, "requestId": "r", "clientCount": 3}
    )
    assert count == {"uid": "me", "nsp": "/", "type": 11, "data": {"requestId": "r", "clientCount": 3}}
    assert answer_of(count["type"], count["data"], RequestType.BROADCAST) == {
        "type": RequestType.BROADCAST_CLIENT_COUNT,
        "requestId": "r",
        "clientCount": 3,
    }
    ack = answer_message(
        "me", "/", {"type": RequestType.BROADCAST_ACK, "requestId": "r", "packet": 1, "args": [1, 2]}
    )
    assert ack is not None and ack["data"] == {"requestId": "r", "packet": 1, "args": [1, 2]}
    assert answer_of(ack["type"], ack["data"], RequestType.BROADCAST) == {
        "type": RequestType.BROADCAST_ACK,
        "requestId": "r",
        "packet": 1,
        "args": [1, 2],
    }
    assert answer_message("me", "/", {"requestId": "r"}) is None


def test_node_sockets_answer_a_fetch_a_sids_question_and_a_rooms_question() -> None:
    data = {
        "requestId": "r",
        "sockets": [
            {"id": "s1", "rooms": ["s1", "lobby"], "data": {}, "handshake": {}},
            {"id": 5, "rooms": ["bad id: dropped"]},
            "garbage",
        ],
    }
    fetched = answer_of(MessageType.FETCH_SOCKETS_RESPONSE, data, RequestType.REMOTE_FETCH)
    assert fetched is not None and [s["id"] for s in fetched["sockets"]] == ["s1"]
    assert answer_of(MessageType.FETCH_SOCKETS_RESPONSE, data, RequestType.SOCKETS) == {
        "requestId": "r",
        "sockets": ["s1"],
    }
    assert answer_of(MessageType.FETCH_SOCKETS_RESPONSE, data, RequestType.ALL_ROOMS) == {
        "requestId": "r",
        "rooms": ["s1", "lobby"],
    }
    assert answer_of(MessageType.SERVER_SIDE_EMIT_RESPONSE, data, RequestType.REMOTE_FETCH) is None
