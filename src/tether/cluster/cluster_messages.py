"""Node's ``socket.io-adapter`` ``ClusterAdapter`` messages, to and from Tether's requests (sans-I/O).

The Redis Streams adapter (:mod:`.streams`) carries emits and room changes in its stream and asks
cluster-wide questions over Redis pub/sub, both in the shapes of node's ``ClusterAdapter``
(``cluster-adapter.ts``, socket.io-adapter 2.5) so that node servers share the cluster. This module holds
those shapes and their translation to and from the requests and answers of
:class:`~.requests.RequestingAdapter`, which does the asking and answering for every adapter; it does no
I/O. A question or an answer on the pub/sub channels is one msgpack message::

    {"uid": <node uid>, "nsp": <namespace>, "type": <MessageType>, "data": {...}}
      type 7 FETCH_SOCKETS            data = {"opts": {"rooms", "except", "flags"}, "requestId"}
      type 3 BROADCAST with acks      data = {"packet", "requestId", "opts"}
      type 8 FETCH_SOCKETS_RESPONSE   data = {"requestId", "sockets": [{"id", "handshake", "rooms", "data"}]}
      type 11 BROADCAST_CLIENT_COUNT  data = {"requestId", "clientCount"}
      type 12 BROADCAST_ACK           data = {"requestId", "packet": value}
      type 9 SERVER_SIDE_EMIT         data = {"packet": [event, ...args], "requestId"?}  (none: no ack)
      type 10 SERVER_SIDE_EMIT_RESPONSE  data = {"requestId", "packet": value}

Node's ``sockets``/``allRooms`` have no message of their own (node answers them locally): Tether asks
FETCH_SOCKETS for them and keeps the ids or rooms. A SERVER_SIDE_EMIT becomes the pub/sub adapter's
request of the same name (type 6, ``data`` = the packet), its answer ``{"type": 6, "requestId", "data"}``:
one engine (:mod:`.requests`) runs the handlers of :mod:`.server_side` for every carrier.
"""

from __future__ import annotations

import enum
from typing import Any, TypedDict

from ..errors import ClusterError
from .wire import Request, RequestType, room_tuple

__all__ = [
    "CHANGES",
    "RESPONSES",
    "ClusterMessage",
    "MessageType",
    "answer_message",
    "answer_of",
    "question",
    "request_of",
]


class MessageType(enum.IntEnum):
    """Node's ``socket.io-adapter`` ``ClusterAdapter`` message types (``cluster-adapter.ts``, 2.5)."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13
    SET_DATA = 100
    """Tether extension, in the stream: replace ``socket.data`` of the sockets in ``opts.rooms``
    (``data = {"opts", "data"}``); node's adapter ignores types it does not know."""


class ClusterMessage(TypedDict):
    """A question or an answer on the pub/sub channels (msgpack): node's ``ClusterMessage`` /
    ``ClusterResponse``; ``data`` depends on ``type`` (see the module docstring)."""

    uid: str
    nsp: str
    type: int
    data: dict[str, Any]


CHANGES = {
    RequestType.REMOTE_JOIN: MessageType.SOCKETS_JOIN,
    RequestType.REMOTE_LEAVE: MessageType.SOCKETS_LEAVE,
    RequestType.REMOTE_DISCONNECT: MessageType.DISCONNECT_SOCKETS,
    RequestType.REMOTE_SET_DATA: MessageType.SET_DATA,
}
"""The room operations that travel in the stream, by the request type that asks for them."""

RESPONSES = (
    MessageType.FETCH_SOCKETS_RESPONSE,
    MessageType.SERVER_SIDE_EMIT_RESPONSE,
    MessageType.BROADCAST_CLIENT_COUNT,
    MessageType.BROADCAST_ACK,
)
"""The types that answer a question (sent on the asker's private channel)."""


def question(uid: str, namespace: str, request: Request) -> ClusterMessage | None:
    """``request`` as node's message: FETCH_SOCKETS (also for sids and rooms), BROADCAST with acks, or
    SERVER_SIDE_EMIT (``request.data``: ``[event, ...args]``); None for a request node's adapter has no
    message for."""
    t = request.type
    if t is RequestType.SERVER_SIDE_EMIT:
        # The key's presence asks for acks (node tests ``requestId !== undefined``): no key without one.
        sse: dict[str, Any] = {"packet": list(request.data or ())}
        if request.request_id is not None:
            sse["requestId"] = request.request_id
        return ClusterMessage(uid=uid, nsp=namespace, type=int(MessageType.SERVER_SIDE_EMIT), data=sse)
    opts: dict[str, Any] = {"rooms": list(request.target_rooms), "except": list(request.except_rooms)}
    if t is RequestType.BROADCAST:
        opts["flags"] = request.flags
        data = {"packet": request.packet, "requestId": request.request_id, "opts": opts}
        return ClusterMessage(uid=uid, nsp=namespace, type=int(MessageType.BROADCAST), data=data)
    if t is RequestType.SOCKETS:
        opts["rooms"] = list(request.rooms)
    elif t not in (RequestType.REMOTE_FETCH, RequestType.ALL_ROOMS):
        return None
    opts["flags"] = {}
    data = {"opts": opts, "requestId": request.request_id}
    return ClusterMessage(uid=uid, nsp=namespace, type=int(MessageType.FETCH_SOCKETS), data=data)


def request_of(uid: str, type_: int, data: dict[str, Any]) -> Request | None:
    """A question from node ``uid`` as the request :meth:`~.requests.RequestingAdapter.answer_request`
    answers (SERVER_SIDE_EMIT too, its packet in ``data``); None for a type Tether does not answer.

    Raises:
        ClusterError: a question without a ``requestId`` (a SERVER_SIDE_EMIT may have none, not a
            non-string one).
    """
    request_id = data.get("requestId")
    if type_ == MessageType.SERVER_SIDE_EMIT:
        # No requestId: no ack. Node tests ``!== undefined``; a nil one is read as none here.
        if request_id is not None and not isinstance(request_id, str):
            raise ClusterError("redis-streams", "SERVER_SIDE_EMIT with a requestId that is not a string")
        return Request(RequestType.SERVER_SIDE_EMIT, uid, request_id, data=data.get("packet"))
    opts = data.get("opts")
    opts = opts if isinstance(opts, dict) else {}
    flags = opts.get("flags")
    if type_ == MessageType.FETCH_SOCKETS:
        rtype = RequestType.REMOTE_FETCH
    elif type_ == MessageType.BROADCAST and request_id is not None:
        rtype = RequestType.BROADCAST
    else:
        return None
    if not isinstance(request_id, str):
        raise ClusterError("redis-streams", f"message type {type_} without a requestId")
    packet = data.get("packet")
    return Request(
        rtype,
        uid,
        request_id,
        target_rooms=room_tuple(opts.get("rooms")),
        except_rooms=room_tuple(opts.get("except")),
        packet=packet if isinstance(packet, dict) else None,
        flags=flags if isinstance(flags, dict) else {},
    )


def answer_message(uid: str, namespace: str, answer: dict[str, Any]) -> ClusterMessage | None:
    """An answer of :meth:`~.requests.RequestingAdapter.answer_request` (the pub/sub adapter's shape) in
    node's shape; None for an answer node has no message for."""
    rtype = answer.get("type")
    data: dict[str, Any] = {"requestId": answer.get("requestId")}
    if rtype == RequestType.BROADCAST_CLIENT_COUNT:
        type_ = MessageType.BROADCAST_CLIENT_COUNT
        data["clientCount"] = answer.get("clientCount")
    elif rtype == RequestType.BROADCAST_ACK:
        type_ = MessageType.BROADCAST_ACK
        data["packet"] = answer.get("packet")
        if "args" in answer:
            data["args"] = answer["args"]  # Tether's: every argument of the ack (node reads "packet")
    elif rtype == RequestType.SERVER_SIDE_EMIT:
        type_ = MessageType.SERVER_SIDE_EMIT_RESPONSE
        data["packet"] = answer.get("data")
    elif "sockets" in answer:
        type_ = MessageType.FETCH_SOCKETS_RESPONSE
        data["sockets"] = answer["sockets"]
    else:
        return None
    return ClusterMessage(uid=uid, nsp=namespace, type=int(type_), data=data)


def answer_of(type_: int, data: dict[str, Any], asked: RequestType) -> dict[str, Any] | None:
    """Node's answer to a question of ours (``asked``: what we asked for) in the shape
    :meth:`~.requests.RequestingAdapter.receive_response` takes; None for one Tether never asks for."""
    request_id = str(data.get("requestId"))
    if type_ == MessageType.BROADCAST_CLIENT_COUNT:
        return {
            "type": RequestType.BROADCAST_CLIENT_COUNT,
            "requestId": request_id,
            "clientCount": data.get("clientCount"),
        }
    if type_ == MessageType.BROADCAST_ACK:
        answer = {"type": RequestType.BROADCAST_ACK, "requestId": request_id, "packet": data.get("packet")}
        if isinstance(data.get("args"), list):
            answer["args"] = data["args"]
        return answer
    if type_ == MessageType.SERVER_SIDE_EMIT_RESPONSE:
        if asked is not RequestType.SERVER_SIDE_EMIT:
            return None
        return {"type": RequestType.SERVER_SIDE_EMIT, "requestId": request_id, "data": data.get("packet")}
    if type_ != MessageType.FETCH_SOCKETS_RESPONSE:
        return None
    raw = data.get("sockets")
    listed = raw if isinstance(raw, list) else ()
    sockets = [s for s in listed if isinstance(s, dict) and isinstance(s.get("id"), str)]
    if asked is RequestType.SOCKETS:
        return {"requestId": request_id, "sockets": [s["id"] for s in sockets]}
    if asked is RequestType.ALL_ROOMS:
        rooms = [room_tuple(s.get("rooms")) for s in sockets]
        return {"requestId": request_id, "rooms": [r for found in rooms for r in found]}
    return {"requestId": request_id, "sockets": sockets}
