"""Cluster wire format, version 1: the bytes Tether nodes and emitters exchange through Redis pub/sub.

Sans-I/O: this module builds and parses payloads; it imports no asyncio and no redis. The Redis adapter
(:mod:`tether.cluster.redis`) and both emitters (:mod:`tether.emitter`) share it.

Version 1 *is* the protocol of node's ``@socket.io/redis-adapter`` 8.x and ``@socket.io/redis-emitter``
5.x (checked against their sources), so Tether nodes, Node.js servers and any backend using those
emitters (Node, PHP, Go ports...) can share one Redis. ``<prefix>`` is ``[redis] prefix``, ``socket.io``
by default; ``<nsp>`` a namespace such as ``/``.

Broadcasts (msgpack), on ``<prefix>#<nsp>#`` or, when exactly one room is targeted,
``<prefix>#<nsp>#<room>#`` (a receiver with no local member in that room skips decoding)::

    [ uid,                      str: the sending node (a receiver drops its own), "emitter" for emitters
      { "type": 2,              Socket.IO EVENT (5, BINARY_EVENT, is accepted too)
        "data": [event, *args], bytes inside args travel as msgpack bin and reach clients as binary
        "nsp": "/" },           absent means "/"
      { "rooms": [...],         target rooms (sids are rooms too); empty: everyone in the namespace
        "except": [...],        rooms whose members are left out
        "flags": {} } ]         socket.io flags (volatile, compress, local...): carried, not acted on

Requests, on ``<prefix>-request#<nsp>#``; JSON when the payload starts with ``{``, msgpack otherwise.
Every node SUBSCRIBEs (not PSUBSCRIBE) to it, so ``PUBSUB NUMSUB`` on it counts the nodes, which is how a
requester knows how many answers to wait for. ``type`` is :class:`RequestType`::

    {"uid", "requestId", "type": 0, "rooms": [...]}                       SOCKETS: sids in rooms
    {"uid", "requestId", "type": 1}                                       ALL_ROOMS
    {"uid", "type": 2|3, "opts": {"rooms", "except"}, "rooms": [...]}     REMOTE_JOIN / REMOTE_LEAVE
    {"uid", "type": 4, "opts": {"rooms", "except"}, "close": bool}        REMOTE_DISCONNECT
    {"uid", "requestId", "type": 5, "opts": {"rooms", "except"}}          REMOTE_FETCH
    {"uid", "requestId"?, "type": 6, "data": [event, ...args]}            SERVER_SIDE_EMIT (ack: requestId)
    {"uid", "requestId", "type": 7, "packet", "opts"}                     BROADCAST with acks (msgpack)
    {"uid", "type": 100, "opts": {"rooms", "except"}, "data": {...}}      REMOTE_SET_DATA (Tether, msgpack)

The older single-socket forms of 2/3/4 (``"sid"`` and ``"room"`` instead of ``"opts"``) are answered too.

Responses, on ``<prefix>-response#<nsp>#`` (every node listens; ``requestId`` says whose it is)::

    {"requestId", "sockets": [sid, ...]}                                  to SOCKETS
    {"requestId", "rooms": [...]}                                         to ALL_ROOMS
    {"requestId", "sockets": [{"id", "handshake", "rooms", "data"}]}      to REMOTE_FETCH
    {"requestId", "type": 8, "clientCount": n}                            to BROADCAST: acks to expect
    {"requestId", "type": 9, "packet": value}  (msgpack)                  to BROADCAST: one client's ack
                                                 Tether adds "args": [...] when the ack had several
    {"requestId", "type": 6, "data": value}                               to SERVER_SIDE_EMIT: a node's

Tether extension, on ``tether#session#`` (JSON, so ``redis-cli PUBLISH`` can send one)::

    {"v": 1, "type": "touch" | "end", "session": "<session id>", "reason"?: str, "node"?: uid}

It tells every node's sessions feature that a session is active (``touch``) or over (``end``). ``node`` is
set when a node publishes it (the HTTP API): that node acted locally already and skips its own message.
A message with a ``v`` this version does not know is dropped, so later versions can change the shape.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
import orjson

from ..errors import ClusterError
from ..protocol.socketio import RESERVED_EVENTS as _RESERVED_EVENTS
from ..protocol.socketio import nesting_exceeds

__all__ = [
    "EMITTER_UID",
    "RESERVED_EVENTS",
    "SESSION_CHANNEL",
    "WIRE_VERSION",
    "Broadcast",
    "Channels",
    "Request",
    "RequestType",
    "SessionCommand",
    "decode_broadcast",
    "decode_object",
    "decode_request",
    "decode_session_command",
    "encode_broadcast",
    "encode_json",
    "encode_msgpack",
    "encode_session_command",
    "has_binary",
    "room_tuple",
    "user_room",
]

WIRE_VERSION = 1
EMITTER_UID = "emitter"
"""The uid emitters put in broadcasts (as ``@socket.io/redis-emitter`` does): no node has it."""
SESSION_CHANNEL = "tether#session#"

# Event names the Socket.IO libraries use themselves; emitting them is refused, as node's emitter does.
RESERVED_EVENTS = _RESERVED_EVENTS


def user_room(user_id: Any) -> str:
    """The room of a user's sockets (``Server.user_room``): ``user:<id>``."""
    return f"user:{user_id}"


EVENT = 2
BINARY_EVENT = 5


class RequestType(enum.IntEnum):
    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9
    REMOTE_SET_DATA = 100
    """Tether extension: replace ``socket.data`` (python-socketio's session) of the sockets in
    ``opts.rooms``; node's adapter ignores request types it does not know."""


_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


@dataclass(frozen=True, slots=True)
class Channels:
    """The channel names of one ``prefix``."""

    prefix: str = "socket.io"

    def broadcast(self, namespace: str, room: str | None = None) -> str:
        base = f"{self.prefix}#{namespace}#"
        return base if room is None else f"{base}{room}#"

    @property
    def broadcast_pattern(self) -> str:
        """One PSUBSCRIBE pattern for the broadcasts of every namespace (the prefix glob-escaped)."""
        return self.prefix.translate(_GLOB_SPECIAL) + "#*"

    def request(self, namespace: str) -> str:
        return f"{self.prefix}-request#{namespace}#"

    def response(self, namespace: str) -> str:
        return f"{self.prefix}-response#{namespace}#"

    def specific_response(self, namespace: str, uid: str) -> str:
        return f"{self.prefix}-response#{namespace}#{uid}#"

    def split_broadcast(self, channel: str) -> tuple[str, str | None] | None:
        """``(namespace, room or None)`` of a broadcast channel, None when it is not one of ours.

        Namespaces never contain ``#`` (we split on the first one); rooms may.
        """
        head = self.prefix + "#"
        if not channel.startswith(head) or not channel.endswith("#"):
            return None
        rest = channel[len(head) : -1]
        namespace, sep, room = rest.partition("#")
        if not namespace.startswith("/"):
            return None
        return namespace, (room if sep else None)

    def namespace_of(self, channel: str, kind: str) -> str | None:
        """The namespace of a ``-request`` or ``-response`` channel (``kind``), None if not one."""
        head = f"{self.prefix}-{kind}#"
        if not channel.startswith(head) or not channel.endswith("#"):
            return None
        namespace = channel[len(head) : -1].partition("#")[0]
        return namespace if namespace.startswith("/") else None


# -- msgpack / JSON ------------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    # Whatever orjson can serialize (what a local emit accepts) must also cross the cluster: dataclasses,
    # datetimes, UUIDs... become their JSON form.
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError as exc:
        raise ClusterError("wire", f"cannot encode {type(value).__name__} for the cluster: {exc}") from exc


def _ext_hook(code: int, data: bytes) -> Any:
    # notepack.io (the JS side) encodes `undefined` as fixext1 type 0 with a 0 byte; JSON.stringify turns it
    # into null in arrays, which is what a Socket.IO client would have seen from a Node server.
    return None


def encode_msgpack(value: Any) -> bytes:
    """msgpack with bin for bytes, str for text (what notepack.io reads and writes).

    Raises:
        ClusterError: a value that neither msgpack nor orjson can encode.
    """
    try:
        data: bytes = msgpack.packb(value, use_bin_type=True, default=_default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ClusterError("wire", f"cannot encode message: {exc}") from exc
    return data


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, timestamp=3, ext_hook=_ext_hook, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ClusterError("wire", f"malformed msgpack: {exc}") from exc


def has_binary(value: Any) -> bool:
    """Whether ``value`` holds bytes anywhere (node's ``hasBinary``): such a message goes as msgpack."""
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(has_binary(v) for v in value)
    if isinstance(value, dict):
        return any(has_binary(v) for v in value.values())
    return False


def encode_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default)
    except TypeError as exc:
        raise ClusterError("wire", f"cannot encode message: {exc}") from exc


def decode_object(data: bytes) -> dict[str, Any]:
    """A request or response: JSON when it starts with ``{``, else msgpack. Must be a map.

    Raises:
        ClusterError: not valid JSON/msgpack, or not a map.
    """
    if data[:1] == b"{":
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ClusterError("wire", f"malformed JSON: {exc}") from exc
    else:
        obj = _unpack(data)
    if not isinstance(obj, dict):
        raise ClusterError("wire", f"expected a map, got {type(obj).__name__}")
    return obj


# -- broadcasts ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One decoded broadcast: an event for the sockets in ``rooms`` minus ``except_rooms``."""

    uid: str
    namespace: str
    event: str
    args: tuple[Any, ...]
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    flags: dict[str, Any] = field(default_factory=dict)


def encode_broadcast(
    channels: Channels,
    uid: str,
    namespace: str,
    event: str,
    args: tuple[Any, ...] | list[Any],
    rooms: tuple[str, ...] | list[str] = (),
    except_rooms: tuple[str, ...] | list[str] = (),
    flags: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    """The channel and payload of a broadcast.

    Raises:
        ClusterError: an argument that cannot be encoded.
    """
    rooms = list(dict.fromkeys(rooms))
    packet = {"type": EVENT, "data": [event, *args], "nsp": namespace}
    opts = {"rooms": rooms, "except": list(dict.fromkeys(except_rooms)), "flags": flags or {}}
    payload = encode_msgpack([uid, packet, opts])
    return channels.broadcast(namespace, rooms[0] if len(rooms) == 1 else None), payload


WIRE_MAX_DEPTH = 254
"""Deepest nesting of a broadcast's data accepted from the adapter's channels: what orjson can write."""


def decode_broadcast(data: bytes) -> Broadcast:
    """Parse a broadcast payload.

    Raises:
        ClusterError: anything that is not a ``[uid, EVENT packet, opts]`` triple.
    """
    obj = _unpack(data)
    if not isinstance(obj, list) or len(obj) != 3:
        raise ClusterError("wire", "broadcast must be [uid, packet, opts]")
    uid, packet, opts = obj
    if not isinstance(packet, dict) or packet.get("type", EVENT) not in (EVENT, BINARY_EVENT):
        raise ClusterError("wire", "broadcast packet must be an EVENT")
    payload = packet.get("data")
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
        raise ClusterError("wire", "broadcast data must be [event, ...args]")
    # Nesting deeper than orjson writes (254) could not be delivered, and walking it (binary attachments)
    # would recurse as deep as the publisher chose. A message shorter than the bound cannot nest deeper.
    if len(data) > WIRE_MAX_DEPTH and nesting_exceeds(payload, WIRE_MAX_DEPTH):
        raise ClusterError("wire", f"broadcast data nested deeper than {WIRE_MAX_DEPTH} levels")
    namespace = packet.get("nsp") or "/"
    if not isinstance(namespace, str):
        raise ClusterError("wire", "broadcast nsp must be a string")
    opts = opts if isinstance(opts, dict) else {}
    flags = opts.get("flags")
    return Broadcast(
        str(uid),
        namespace,
        payload[0],
        tuple(payload[1:]),
        room_tuple(opts.get("rooms")),
        room_tuple(opts.get("except")),
        flags if isinstance(flags, dict) else {},
    )


def room_tuple(value: Any) -> tuple[str, ...]:
    """A list of rooms from the wire as strings (anything else: no rooms)."""
    # Node's adapter accepts numeric rooms and matches them as strings too; so do we.
    if not isinstance(value, list):
        return ()
    return tuple(v if isinstance(v, str) else _room_str(v) for v in value if v is not None)


def _room_str(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- requests ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One decoded request; the fields a given ``type`` does not use keep their defaults."""

    type: RequestType
    uid: str = ""
    request_id: str | None = None
    rooms: tuple[str, ...] = ()
    """SOCKETS: rooms to list; REMOTE_JOIN/LEAVE: rooms to join or leave."""
    target_rooms: tuple[str, ...] = ()
    """``opts.rooms``: which sockets a REMOTE_* or BROADCAST request is about (empty: all)."""
    except_rooms: tuple[str, ...] = ()
    sid: str | None = None
    """The single-socket forms of REMOTE_JOIN/LEAVE/DISCONNECT."""
    room: str | None = None
    close: bool = False
    packet: dict[str, Any] | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    """REMOTE_SET_DATA: the new ``socket.data``."""

    def encode(self) -> bytes:
        """JSON, as node's adapter sends every request but BROADCAST (which may carry bytes: msgpack)."""
        obj: dict[str, Any] = {"uid": self.uid, "type": int(self.type)}
        if self.request_id is not None:
            obj["requestId"] = self.request_id
        t = self.type
        if t in (
            RequestType.REMOTE_JOIN,
            RequestType.REMOTE_LEAVE,
            RequestType.REMOTE_DISCONNECT,
            RequestType.REMOTE_FETCH,
            RequestType.BROADCAST,
            RequestType.REMOTE_SET_DATA,
        ):
            opts: dict[str, Any] = {"rooms": list(self.target_rooms), "except": list(self.except_rooms)}
            if t is RequestType.BROADCAST:
                opts["flags"] = self.flags
            obj["opts"] = opts
        if t in (RequestType.SOCKETS, RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE):
            obj["rooms"] = list(self.rooms)
        if t is RequestType.REMOTE_DISCONNECT:
            obj["close"] = self.close
        if t is RequestType.BROADCAST:
            obj["packet"] = self.packet
            return encode_msgpack(obj)
        if t is RequestType.REMOTE_SET_DATA:
            obj["data"] = self.data
            return encode_msgpack(obj)
        if t is RequestType.SERVER_SIDE_EMIT:
            obj["data"] = list(self.data or ())
            return encode_msgpack(obj) if has_binary(obj["data"]) else encode_json(obj)
        return encode_json(obj)


def decode_request(data: bytes) -> Request:
    """Parse a request payload.

    Raises:
        ClusterError: malformed payload or an unknown ``type``.
    """
    obj = decode_object(data)
    try:
        rtype = RequestType(int(obj.get("type")))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ClusterError("wire", f"unknown request type {obj.get('type')!r}") from None
    opts = obj.get("opts")
    has_opts = isinstance(opts, dict)
    opts = opts if isinstance(opts, dict) else {}
    request_id = obj.get("requestId")
    sid = obj.get("sid")
    room = obj.get("room")
    packet = obj.get("packet")
    flags = opts.get("flags")
    return Request(
        rtype,
        str(obj.get("uid", "")),
        None if request_id is None else str(request_id),
        room_tuple(obj.get("rooms")),
        room_tuple(opts.get("rooms")),
        room_tuple(opts.get("except")),
        None if has_opts or not isinstance(sid, str) else sid,
        None if room is None else _room_str(room),
        bool(obj.get("close", False)),
        packet if isinstance(packet, dict) else None,
        flags if isinstance(flags, dict) else {},
        obj.get("data"),
    )


# -- sessions (Tether extension) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionCommand:
    """``touch``: the session is active (reset its idle timer); ``end``: close its sockets everywhere."""

    type: str
    session: str
    reason: str | None = None
    node: str | None = None
    """The uid of the node that published it, which acted locally already; None from emitters."""
    version: int = WIRE_VERSION

    TYPES = ("touch", "end")


def encode_session_command(command: SessionCommand) -> bytes:
    obj: dict[str, Any] = {"v": command.version, "type": command.type, "session": command.session}
    if command.reason is not None:
        obj["reason"] = command.reason
    if command.node is not None:
        obj["node"] = command.node
    return orjson.dumps(obj)


def decode_session_command(data: bytes) -> SessionCommand:
    """Parse a ``tether#session#`` message.

    Raises:
        ClusterError: malformed, an unknown version or type, or no session id.
    """
    obj = decode_object(data)
    version = obj.get("v")
    if version != WIRE_VERSION:
        raise ClusterError("wire", f"session command version {version!r} not supported (want {WIRE_VERSION})")
    ctype, session, reason = obj.get("type"), obj.get("session"), obj.get("reason")
    if ctype not in SessionCommand.TYPES:
        raise ClusterError("wire", f"unknown session command {ctype!r}")
    if not isinstance(session, str) or not session:
        raise ClusterError("wire", "session command without a session id")
    node = obj.get("node")
    return SessionCommand(
        ctype, session, reason if isinstance(reason, str) else None, node if isinstance(node, str) else None
    )


def handshake_time(ts: float) -> str:
    """``handshake.time`` as node's Socket.IO writes it (``new Date().toString()`` is not portable: ISO)."""
    return datetime.fromtimestamp(ts).astimezone().isoformat()
