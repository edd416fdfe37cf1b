"""Socket.IO v5 packets: the data of Engine.IO MESSAGE packets.

Wire format (https://socket.io/docs/v4/socket-io-protocol/), fields in this order::

    <type>                     one digit: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR,
                               5 BINARY_EVENT, 6 BINARY_ACK
    [<attachments>-]           BINARY_* only: how many binary messages follow this one
    [<namespace>,]             omitted for the main namespace "/"
    [<ack id>]                 decimal; EVENT asks for an ack, ACK answers that id
    [<JSON data>]              CONNECT: auth object; CONNECT_ERROR: {"message", "data"?};
                               EVENT: ["name", ...args]; ACK: [...args]

    42["chat","hi"]            451-/admin,7["upload",{"_placeholder":true,"num":0}]   + 1 binary message
    0/admin,{"token":"x"}      40{"sid":"..."}   43["ok"]   44{"message":"Invalid namespace"}

Binary data inside arguments is replaced by ``{"_placeholder": true, "num": n}`` and sent as ``n``
separate binary Engine.IO messages right after the text packet (:func:`deconstruct`, :func:`reconstruct`).

JSON goes through orjson: its output is what ``JSON.stringify`` produces for the same values (compact,
UTF-8), it refuses ``bytes`` with TypeError, which is how :func:`encode_event` finds binary arguments for
free on the fast path, and it rejects NaN/Infinity on input, as JSON.parse does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import LocalProtocolError, PayloadTooBig, RemoteProtocolError
from . import jsontext
from .engineio import Binary

__all__ = [
    "CLIENT_COMMANDS",
    "MAX_DEPTH",
    "RESERVED_EVENTS",
    "RESERVED_PREFIXES",
    "Packet",
    "PacketType",
    "check_depth",
    "deconstruct",
    "encode_event",
    "is_reserved_event",
    "reconstruct",
]

MAX_ATTACHMENTS = 64
"""More binary attachments than this in one packet is refused as hostile."""

MAX_DEPTH = 32
"""Default bound on how deeply the arrays and objects of one packet may nest (``[limits] max_depth``).

The event array itself is level 1, so ``42["e",{"a":[1]}]`` is 3 deep. Without a bound a client chooses
how deep every walk over its data recurses: orjson reads 1024 levels, but Python's recursion limit (1000)
stops :func:`reconstruct` before that and orjson writes at most 254 (an echo of deeper data fails).
"""

_MAX_ACK_ID = 2**53 - 1  # Number.MAX_SAFE_INTEGER: what a JS peer can represent


RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
"""Event names the Socket.IO libraries use themselves. A client's EVENT named so is refused as an invalid
packet, as node's socket.io-parser refuses it (``isPayloadValid``): else a client could run the server's
``connect`` or ``disconnect`` route itself, without the connect hooks."""

RESERVED_PREFIXES = ("session:", "tether:")
"""Prefixes of the events Tether itself sends (``session:expired``, ``tether:error``...): refused from
clients like :data:`RESERVED_EVENTS`, but for :data:`CLIENT_COMMANDS`."""

CLIENT_COMMANDS = frozenset({"session:logout"})
"""Tether's own events that its client helper sends (``static/session.js``): allowed from clients."""


def is_reserved_event(name: str) -> bool:
    """Whether a client may not send an event ``name``: :data:`RESERVED_EVENTS`, :data:`RESERVED_PREFIXES`."""
    return name in RESERVED_EVENTS or (name.startswith(RESERVED_PREFIXES) and name not in CLIENT_COMMANDS)


class PacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class Packet:
    """One Socket.IO packet. ``data`` holds decoded JSON with attachments still as placeholders."""

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0

    @classmethod
    def decode(cls, text: str, max_depth: int = MAX_DEPTH) -> Packet:
        """Decode the text part of a packet (the Engine.IO MESSAGE data).

        Args:
            text: the packet as received, without the Engine.IO type digit.
            max_depth: deepest nesting of arrays and objects accepted in the JSON data (see
                :data:`MAX_DEPTH`).

        Raises:
            RemoteProtocolError: anything that is not a valid Socket.IO v5 packet, with the reason (data
                nested deeper than ``max_depth`` included).
        """
        if not text:
            raise RemoteProtocolError("empty Socket.IO packet")
        c = text[0]
        if not "0" <= c <= "6":
            raise RemoteProtocolError(f"unknown Socket.IO packet type {c!r}")
        ptype = PacketType(ord(c) - 48)
        i = 1
        n = len(text)
        attachments = 0
        if ptype in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
            dash = text.find("-", 1)
            count = text[1:dash] if dash > 0 else ""
            # isdecimal() alone accepts any Unicode digit ("٣"), which int() reads and a JS peer does not.
            if not (count.isascii() and count.isdecimal()) or len(count) > 3:
                raise RemoteProtocolError("binary packet without a valid attachment count")
            attachments = int(count)
            if attachments > MAX_ATTACHMENTS:
                raise RemoteProtocolError(f"{attachments} attachments exceeds {MAX_ATTACHMENTS}")
            i = dash + 1
        namespace = "/"
        if i < n and text[i] == "/":
            comma = text.find(",", i)
            end = n if comma < 0 else comma
            namespace = text[i:end]
            i = end + 1 if comma >= 0 else n
        ack_id: int | None = None
        j = i
        while j < n and "0" <= text[j] <= "9":
            j += 1
        if j > i:
            if j - i > 16:
                raise RemoteProtocolError("ack id too long")
            ack_id = int(text[i:j])
            if ack_id > _MAX_ACK_ID:
                raise RemoteProtocolError("ack id out of range")
            i = j
        data: Any = None
        if i < n:
            try:
                data = jsontext.loads(text[i:])
            except orjson.JSONDecodeError as exc:
                raise RemoteProtocolError(f"invalid JSON in Socket.IO packet: {exc}") from exc
            check_depth(text, data, max_depth)
        packet = cls(ptype, namespace, data, ack_id, attachments)
        packet._validate()
        return packet

    def _validate(self) -> None:
        t, data = self.type, self.data
        if t is PacketType.CONNECT:
            if data is not None and not isinstance(data, dict):
                raise RemoteProtocolError("CONNECT payload must be an object")
        elif t is PacketType.DISCONNECT:
            if data is not None:
                raise RemoteProtocolError("DISCONNECT carries no payload")
        elif t in (PacketType.EVENT, PacketType.BINARY_EVENT):
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise RemoteProtocolError("EVENT payload must be an array starting with the event name")
            if is_reserved_event(data[0]):
                raise RemoteProtocolError(f"reserved event name {data[0][:40]!r}")
        elif t in (PacketType.ACK, PacketType.BINARY_ACK):
            if not isinstance(data, list):
                raise RemoteProtocolError("ACK payload must be an array")
            if self.id is None:
                raise RemoteProtocolError("ACK without an id")
        elif t is PacketType.CONNECT_ERROR:
            raise RemoteProtocolError("CONNECT_ERROR is sent by servers only")
        if t in (PacketType.CONNECT, PacketType.DISCONNECT) and self.id is not None:
            raise RemoteProtocolError(f"{t.name} carries no ack id")

    def encode(self) -> list[bytes]:
        """The packet as MESSAGE encodings: the text packet, then one :class:`Binary` per attachment."""
        data = self.data
        attachments: list[bytes] = []
        ptype = self.type
        if data is not None and ptype in (PacketType.EVENT, PacketType.ACK):
            try:
                body = jsontext.dumps(data)
            except TypeError:
                data, attachments = deconstruct(data)
                body = _dumps(data)
                if attachments:
                    ptype = PacketType(ptype + 3)
        else:
            body = b"" if data is None else _dumps(data)
        head = f"4{ptype.value}"
        if attachments:
            head += f"{len(attachments)}-"
        if self.namespace != "/":
            head += self.namespace + ","
        if self.id is not None:
            head += str(self.id)
        return [head.encode() + body, *(Binary(a) for a in attachments)]


def _dumps(data: Any) -> bytes:
    try:
        return jsontext.dumps(data)
    except TypeError as exc:
        raise LocalProtocolError(f"value is not JSON serializable: {exc}") from exc


def encode_event(
    namespace: str, event: str, args: tuple[Any, ...] | list[Any], ack_id: int | None = None
) -> list[bytes]:
    """Encode an EVENT (or BINARY_EVENT when an argument holds bytes) for any number of recipients.

    This is the hot path of every emit and broadcast: one orjson call and one concatenation when the
    arguments hold no bytes. The result is immutable and shared by all recipients.
    """
    try:
        body = orjson.dumps([event, *args])
    except TypeError:
        return Packet(PacketType.EVENT, namespace, [event, *args], ack_id).encode()
    if namespace == "/" and ack_id is None:
        return [b"42" + body]
    head = "42" + ("" if namespace == "/" else namespace + ",") + ("" if ack_id is None else str(ack_id))
    return [head.encode() + body]


def deconstruct(data: Any) -> tuple[Any, list[bytes]]:
    """Replace each ``bytes`` in ``data`` by a placeholder; return the new data and the attachments."""
    attachments: list[bytes] = []

    def walk(value: Any) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            attachments.append(bytes(value))
            return {"_placeholder": True, "num": len(attachments) - 1}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(data), attachments


def reconstruct(data: Any, attachments: list[bytes]) -> Any:
    """Put attachments back where their placeholders are.

    Raises:
        RemoteProtocolError: a placeholder number out of range, or attachments that no placeholder uses.
    """
    used: set[int] = set()

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("_placeholder") is True and len(value) == 2:
                num = value.get("num")
                if not isinstance(num, int) or isinstance(num, bool) or not 0 <= num < len(attachments):
                    raise RemoteProtocolError(f"placeholder number {num!r} out of range")
                used.add(num)
                return attachments[num]
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    result = walk(data)
    if len(used) != len(attachments):
        raise RemoteProtocolError("binary attachments without placeholders")
    return result


def check_depth(raw: str | bytes, data: Any, max_depth: int) -> None:
    """Refuse ``data`` (decoded from ``raw``) when its arrays and objects nest deeper than ``max_depth``.

    Nesting is never deeper than the number of opening brackets in the text, which ``str.count`` finds at
    C speed: the walk over the decoded value only runs for a message holding more brackets than the bound.
    And ``d`` levels take ``d`` opening and ``d`` closing brackets, so a text shorter than
    ``2 * (max_depth + 1)`` is not even counted. The walk is iterative, so the check itself cannot exhaust
    the stack.

    Raises:
        RemoteProtocolError: too deep, naming the bound.
    """
    if len(raw) <= 2 * max_depth + 1:
        return
    if isinstance(raw, str):
        if raw.count("[") + raw.count("{") <= max_depth:
            return
    elif raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    if nesting_exceeds(data, max_depth):
        raise RemoteProtocolError(f"data nested deeper than {max_depth} levels")


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """Whether the lists and dicts of ``value`` nest more than ``max_depth`` levels (a scalar is 0)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if type(item) is dict:
            item = item.values()
        elif type(item) is not list:
            continue
        if depth > max_depth:
            return True
        for child in item:
            if type(child) is list or type(child) is dict:
                push((child, depth + 1))
    return False


def check_size(size: int, max_payload: int) -> None:
    """Raise :class:`PayloadTooBig` when ``size`` exceeds ``max_payload``."""
    if size > max_payload:
        raise PayloadTooBig(size, max_payload)
